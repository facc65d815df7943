"""The demo bot's own conversation tests (kefu/demo/tests) pass, without a model and with the mock model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.convtest.support import DEMO_TESTS, Report, run_kefu_test
from tests.support import MockLLM

DEMO_FLOWS = ("order_status", "return_request", "change_address", "human")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One run of the whole demo suite, no model configured."""
    return run_kefu_test(DEMO_TESTS, "--json", cwd=tmp_path_factory.mktemp("demo-suite"))


def test_demo_suite_passes_without_a_model(demo_report: Report) -> None:
    assert demo_report.failed() == [], demo_report.explain()
    assert demo_report.returncode == 0, demo_report.stderr[-3000:]
    assert demo_report.data["passed"] is True


def test_demo_suite_covers_every_demo_flow(demo_report: Report) -> None:
    files = {Path(step["file"]).stem for step in demo_report.steps}
    assert set(DEMO_FLOWS) <= files
    assert {"repairs", "tool_failures"} <= files
    conversations = {(step["file"], step["conversation"]) for step in demo_report.steps}
    assert len(conversations) >= 30
    restarts = [step for step in demo_report.steps if step["user"] is None]
    assert restarts, "the suite restarts the server in the middle of a flow"


def test_demo_suite_passes_with_the_mock_model(fresh_mock: MockLLM, tmp_path: Path) -> None:
    env = {"KEFU_LLM_BASE_URL": fresh_mock.url + "/v1", "KEFU_LLM_API_KEY": "sk-test", "KEFU_LLM_MODEL": "mock-chat"}
    report = run_kefu_test(DEMO_TESTS, "--json", cwd=tmp_path, env=env)
    assert report.failed() == [], report.explain()
    assert report.returncode == 0, report.stderr[-3000:]
