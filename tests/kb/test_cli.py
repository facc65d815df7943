"""``kefu kb …`` as real processes: search --json, import with a report, list, eval exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kefu.config import DEMO_BOT_DIR


def _kefu(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run(
        [sys.executable, "-m", "kefu", "kb", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_kb_search_json_prints_ranked_hits(tmp_path: Path) -> None:
    db = ["--bot-dir", str(DEMO_BOT_DIR), "--database-url", f"sqlite:///{tmp_path / 'kb.db'}"]
    result = _kefu("search", "yf多少", "--json", *db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits[0]["id"] == "ship-fee" and hits[0]["question"] == "运费怎么算？"
    assert set(hits[0]) == {"id", "question", "score"}
    ranked = [round(h["score"], 2) for h in hits]  # within a rounding of each other, BM25 orders them
    assert ranked == sorted(ranked, reverse=True)
    assert "Building prefix dict" not in result.stderr  # jieba stays quiet


def test_cli_kb_import_reports_skipped_rows_then_search_and_list_see_the_rows(tmp_path: Path, bot_dir: Path) -> None:
    faq = tmp_path / "more.csv"
    faq.write_text("question,answer\n可以开收据吗？,可以，联系客服。\n没有答案的问题,\n", encoding="utf-8")
    db = ["--bot-dir", str(bot_dir), "--database-url", f"sqlite:///{tmp_path / 'kb.db'}"]
    result = _kefu("import", str(faq), "--strict", *db, cwd=tmp_path)
    assert result.returncode == 1  # --strict and a row was skipped
    assert f"{faq}:3: skipped: answer is empty" in result.stderr
    assert "imported 1 entries (1 new" in result.stdout
    hits = json.loads(_kefu("search", "收据", "--json", *db, cwd=tmp_path).stdout)
    assert hits[0]["question"] == "可以开收据吗？"
    listed = json.loads(_kefu("list", "--json", *db, cwd=tmp_path).stdout)
    assert {e["origin"].split(":")[0] for e in listed} == {"bot", "import"} and len(listed) == 4


def test_cli_kb_eval_exit_codes(tmp_path: Path, bot_dir: Path) -> None:
    db = ["--bot-dir", str(bot_dir), "--database-url", f"sqlite:///{tmp_path / 'kb.db'}"]
    cases = tmp_path / "eval.jsonl"
    cases.write_text(
        '{"query": "邮费多少", "expected": "运费怎么算？"}\n'
        '{"query": "钱什么时候退", "expected": "refund"}\n'
        '{"query": "你们卖冰箱吗", "expected": null}\n',
        encoding="utf-8",
    )
    ok = _kefu("eval", str(cases), "--json", "--min-hit1", "0.9", "--max-false-answer", "0", *db, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    overall = json.loads(ok.stdout)["overall"]
    assert overall["hit_at_1"] == 1.0 and overall["false_answer_rate"] == 0.0 and overall["no_answer"] == 1
    cases.write_text(cases.read_text(encoding="utf-8") + '{"query": "怎么开发票", "expected": "退款多久到账？"}\n')
    gate = _kefu("eval", str(cases), "--min-hit1", "0.9", *db, cwd=tmp_path)
    assert gate.returncode == 1 and "quality gate failed" in gate.stderr
    assert "怎么开发票" in gate.stdout  # the miss is listed
    cases.write_text('{"query": "x", "expected": "no such question"}\n', encoding="utf-8")
    bad = _kefu("eval", str(cases), *db, cwd=tmp_path)
    assert bad.returncode == 2 and "not in the knowledge base" in bad.stderr


def test_cli_kb_eval_demo_shop_meets_the_targets_on_dev(tmp_path: Path) -> None:
    # No --bot-dir and no KEFU_BOT_DIR: the eval file in kefu/demo/kb/ evaluates the demo shop.
    result = _kefu(
        "eval",
        str(DEMO_BOT_DIR / "kb" / "eval.jsonl"),
        "--split",
        "dev",
        "--min-hit1",
        "0.9",
        "--max-false-answer",
        "0.05",
        "--json",
        "--database-url",
        f"sqlite:///{tmp_path / 'kb.db'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["overall"]["queries"] >= 200


def test_cli_kb_import_refuses_files_it_cannot_read_and_writes_nothing(tmp_path: Path, bot_dir: Path) -> None:
    db = ["--bot-dir", str(bot_dir), "--database-url", f"sqlite:///{tmp_path / 'kb.db'}"]
    good = tmp_path / "good.csv"
    good.write_text("question,answer\n可以开收据吗？,可以，联系客服。\n", encoding="utf-8")
    cases = {
        "wrong-header.csv": ("q,a\nx,y\n", ":1: skipped: header has no question / answer column (found: q, a)"),
        "empty.csv": ("", ":1: skipped: empty file: expected a header row with question and answer columns"),
        "unclosed.csv": (
            'question,answer\n"运费多少,8元\n退货,7天\n',
            ":2: skipped: CSV syntax error in the row starting at line 2 (a quote opened here is never closed)",
        ),
    }
    for name, (text, message) in cases.items():
        bad = tmp_path / name
        bad.write_text(text, encoding="utf-8")
        result = _kefu("import", str(good), str(bad), *db, cwd=tmp_path)
        assert result.returncode == 1, name
        assert f"{bad}{message}" in result.stderr
        assert "answer is empty" not in result.stderr
        assert f"error: nothing to import from {bad}" in result.stderr
        assert "imported" not in result.stdout
    listed = json.loads(_kefu("list", "--json", *db, cwd=tmp_path).stdout)
    assert {e["origin"].split(":")[0] for e in listed} == {"bot"}  # the good file was not imported either
