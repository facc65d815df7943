"""The runner really detects failures: wrong expectations fail with readable messages and exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.convtest.runner import Observed, check
from kefu.convtest.spec import Exchange
from kefu.flows.reply import FlowReply, ToolCallLog
from tests.convtest.support import ROOT, Report, run_kefu_test

WRONG = """\
bot: {bot}
conversations:
  - name: wrong on purpose
    turns:
      - user: 我的快递到哪了
        expect:
          source: faq
          flow: return_request
          reply_contains: 退货原因
          reply_not_contains: 订单号
      - user: DD20261105002
        expect:
          slot: {{order_id: DD20261101001}}
          tool_called: verify_phone
      - restart: true
      - user: "1234"
        expect:
          tool_called: {{name: verify_phone, with: {{phone_last4: "9999"}}}}
          tool_not_called: track_parcel
          flow_ended: cancelled
          handoff_offered: true
  - name: right
    turns:
      - user: 转人工
        expect: {{handoff: true, flow_ended: handoff}}
"""


@pytest.fixture(scope="module")
def wrong_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wrong") / "wrong.yaml"
    path.write_text(WRONG.format(bot=ROOT / "kefu" / "demo"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wrong_report(wrong_file: Path) -> Report:
    return run_kefu_test(wrong_file, "--json", cwd=wrong_file.parent)


def _step(report: Report, line: int) -> dict[str, object]:
    return next(s for s in report.steps if s["line"] == line)


def test_runner_wrong_expectations_exit_1(wrong_report: Report) -> None:
    assert wrong_report.returncode == 1, wrong_report.stderr[-2000:]
    assert wrong_report.data["passed"] is False
    assert "1/2 conversations passed" in wrong_report.stderr


def test_runner_reports_each_broken_expectation(wrong_report: Report) -> None:
    first = _step(wrong_report, 5)["failures"]
    assert first == [
        "reply does not contain '退货原因'",
        "reply contains '订单号'",
        "source: expected 'faq', got 'flow'",
        "running flow: expected 'return_request', got 'order_status' (order_status running)",
    ]
    second = _step(wrong_report, 11)["failures"]
    assert second == [
        "slot order_id: expected 'DD20261101001', got 'DD20261105002'",
        "tool 'verify_phone' not called (calls: none)",
    ]


def test_runner_checks_tools_and_outcome_after_a_restart(wrong_report: Report) -> None:
    restart = _step(wrong_report, 15)
    assert restart["user"] is None and restart["passed"] is True
    failures = _step(wrong_report, 16)["failures"]
    assert isinstance(failures, list) and len(failures) == 4, failures
    wanted = "tool 'verify_phone' not called with {'phone_last4': '9999'} (calls: verify_phone("
    assert any(f.startswith(wanted) for f in failures), failures
    assert "tool 'track_parcel' was called" in failures
    assert "flow_ended: expected 'cancelled', flow status is 'completed'" in failures
    assert "handoff_offered: expected True, got None" in failures


def test_runner_passing_steps_stay_passed(wrong_report: Report) -> None:
    right = [s for s in wrong_report.steps if s["conversation"] == "right"]
    assert len(right) == 1 and right[0]["passed"] is True
    assert "转人工" in str(right[0]["reply"])


def test_runner_table_shows_failures_with_file_and_line(wrong_file: Path) -> None:
    report = run_kefu_test(wrong_file, cwd=wrong_file.parent)
    assert report.returncode == 1
    assert f"{wrong_file}:5" in report.stdout
    assert "- running flow: expected 'return_request', got 'order_status'" in report.stdout
    assert "bot: 请提供您的订单号" in report.stdout
    assert "llm_not_configured" not in report.stderr  # the report is not buried in log lines


def _flow_reply(**slots: str) -> FlowReply:
    return FlowReply(
        text="",
        state=None,
        flow="order_status",
        outcome="completed",
        tool_calls=[ToolCallLog("verify_phone", {"order_id": "DD1", "phone_last4": "1234"}, True, None, 1.0)],
        slots=dict(slots),
    )


def test_check_error_event_fails_unless_expected() -> None:
    seen = Observed(reply="", error={"code": "internal_error", "message": "boom"})
    assert check(Exchange(line=1, user="x"), seen) == ["the turn ended with error 'internal_error': boom"]
    assert check(Exchange(line=1, user="x", expect={"error": "internal_error"}), seen) == []
    assert check(Exchange(line=1, user="x", expect={"error": "timeout"}), seen) == [
        "error: expected 'timeout', got 'internal_error'"
    ]


def test_check_tool_called_matches_arguments_partially() -> None:
    seen = Observed(done={"source": "flow"}, flow=_flow_reply(phone_last4="1234"))
    ok = {"tool_called": {"name": "verify_phone", "with": {"phone_last4": 1234}}, "slot": {"phone_last4": 1234}}
    assert check(Exchange(line=1, user="x", expect=ok), seen) == []
    wrong = {"tool_called": [{"name": "verify_phone", "with": {"order_id": "DD2"}}, "get_order"]}
    failures = check(Exchange(line=1, user="x", expect=wrong), seen)
    assert len(failures) == 2
    assert failures[1].startswith("tool 'get_order' not called (calls: verify_phone(")


def test_check_flow_ended_true_means_any_outcome() -> None:
    ended = Observed(done={"flow": {"name": "order_status", "status": "failed"}})
    running = Observed(done={"flow": {"name": "order_status", "status": "running"}})
    exchange = Exchange(line=1, user="x", expect={"flow_ended": True})
    assert check(exchange, ended) == []
    assert check(exchange, running) == ["flow_ended: expected True, flow status is 'running'"]
