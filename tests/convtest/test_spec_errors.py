"""A bad test file is reported with file:line and exit code 2, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.config import DEMO_BOT_DIR
from kefu.convtest.spec import SpecError, parse
from tests.convtest.support import run_kefu_test

GOOD = """\
conversations:
  - name: ok
    turns:
      - user: 转人工
        expect: {handoff: true}
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "conversations:\n  - name: x\n    turns:\n      - user: hi\n        expect: {slots: {a: 1}}\n",
            4,
            "unknown expectation(s) ['slots']",
        ),
        ("conversations:\n  - name: x\n    turns:\n      - expect: {source: flow}\n", 4, "a turn needs 'user"),
        (
            "conversations:\n  - name: x\n    turns:\n      - user: hi\n        says: x\n",
            4,
            "unknown turn key(s) ['says']",
        ),
        ("conversations:\n  - name: x\n    turns:\n      - user: [a\n", 5, "not valid YAML"),
        ("conversations:\n  - name: x\n    turns:\n      - user: hi\n        expect: {source: model}\n", 4, "'source'"),
        (
            "conversations:\n  - name: x\n    turns:\n      - user: hi\n        expect: {flow_ended: done}\n",
            4,
            "flow_ended",
        ),
        ("conversations:\n  - name: x\n    turns:\n      - user: hi\n        expect: {slot: order_id}\n", 4, "'slot'"),
        (
            "conversations:\n  - name: x\n    turns:\n      - user: hi\n        expect: {handoff: yes please}\n",
            4,
            "handoff",
        ),
        ("conversations:\n  - name: x\n    turns:\n      - restart: true\n        user: hi\n", 4, "turn of its own"),
        ("conversations:\n  - name: x\n    turn:\n      - user: hi\n", 2, "needs 'turns'"),
        ("conversations:\n  - name: x\n    user: a\n    turns: [{user: hi}]\n    tags: [x]\n", 2, "['tags']"),
        ("merchant: shopify\nconversations: []\n", 1, "merchant must be"),
        ("stubs:\n  track_parcel: [1, 2]\nconversations: []\n", 2, "stub 'track_parcel'"),
    ],
)
def test_spec_bad_file_names_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as raised:
        parse(path)
    assert str(raised.value).startswith(f"{path}:{line}: "), raised.value
    assert message in str(raised.value)


def test_spec_without_conversations_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("stubs: {}\n", encoding="utf-8")
    with pytest.raises(SpecError, match="'conversations' list"):
        parse(path)


def test_spec_parses_steps_with_lines_and_stubs(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "stubs:\n  track_parcel: {ok: false, error: unavailable}\n"
        + GOOD.replace("- name: ok", "- name: ok\n    user: u1"),
        encoding="utf-8",
    )
    spec = parse(path)
    assert spec.stubs == {"track_parcel": [{"ok": False, "error": "unavailable"}]}
    (conversation,) = spec.conversations
    assert conversation.user == "u1"
    assert [(s.line, s.user, s.expect) for s in conversation.exchanges] == [(7, "转人工", {"handoff": True})]


def test_cli_spec_error_exits_2_before_running_anything(tmp_path: Path) -> None:
    (tmp_path / "a_good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b_bad.yaml").write_text(
        "conversations:\n  - turns:\n      - user: hi\n        expect: {slots: {a: 1}}\n", encoding="utf-8"
    )
    report = run_kefu_test(tmp_path, cwd=tmp_path)
    assert report.returncode == 2
    assert f"{tmp_path / 'b_bad.yaml'}:3: unknown expectation(s) ['slots']" in report.stderr
    assert "conversations passed" not in report.stderr  # the good file did not run either
    assert report.stdout == ""


def test_cli_unknown_stub_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "stub.yaml"
    path.write_text("stubs:\n  track_parcle: {ok: false, error: unavailable}\n" + GOOD, encoding="utf-8")
    report = run_kefu_test(path, "--bot-dir", DEMO_BOT_DIR, cwd=tmp_path)
    assert report.returncode == 2
    assert "stub(s) ['track_parcle'] name no tool of the bot" in report.stderr
    assert "track_parcel" in report.stderr  # the tools it does have are listed


def test_cli_missing_path_exits_2(tmp_path: Path) -> None:
    report = run_kefu_test(tmp_path / "nope.yaml", cwd=tmp_path)
    assert report.returncode == 2
    assert "no such file or directory" in report.stderr
