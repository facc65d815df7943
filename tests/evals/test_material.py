"""The evaluation material under evals/ stays loadable: every conversation file parses, every FAQ loads without a
skipped row and every labelled question names an entry of its shop (the benchmarks that read them would otherwise
report a broken file as a bad score)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.content.problems import LoadReport
from kefu.convtest.spec import parse
from kefu.kb.evaluate import load_cases, resolve_expected
from kefu.kb.loaders import load_faq_file

EVALS = Path(__file__).resolve().parents[2] / "evals"
CONVERSATIONS = sorted((EVALS / "conversations").glob("*/*.yaml"))
SHOPS = sorted(p for p in (EVALS / "faq").iterdir() if p.is_dir())


def test_both_halves_have_enough_conversations() -> None:
    for half in ("tuning", "heldout"):
        files = [parse(p) for p in CONVERSATIONS if p.parent.name == half]
        assert sum(len(f.conversations) for f in files) >= 30, half


@pytest.mark.parametrize("path", CONVERSATIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_conversation_file_parses(path: Path) -> None:
    spec = parse(path)
    assert spec.conversations


@pytest.mark.parametrize("shop", SHOPS, ids=lambda p: p.name)
def test_shop_faq_and_questions_load(shop: Path) -> None:
    report = LoadReport()
    entries = load_faq_file(shop / "faq.csv", report, origin="faq.csv")
    assert len(entries) >= 40 and not report.skipped, report.report()
    cases = load_cases(shop / "eval.jsonl")
    expected = resolve_expected(cases, entries)  # raises for a label that names no entry
    answerable = [c for c in cases if expected[c.line] is not None]
    assert len(answerable) >= 100
    assert len(cases) - len(answerable) >= 10  # questions the FAQ cannot answer keep false answers measurable
