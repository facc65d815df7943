"""Eval metrics: hit@k, MRR, direct / wrong / false answers, splits, bad files, calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.kb.entries import make_entry
from kefu.kb.evaluate import Case, EvalFileError, QueryOutcome, calibrate, load_cases, metrics, report, resolve_expected


def _outcome(
    expected: str | None, ranked: tuple[str, ...], scores: tuple[float, ...], conf: str, split: str = "dev"
) -> QueryOutcome:
    case = Case(query="q", expected=expected, line=1, split=split)
    return QueryOutcome(case, expected, ranked, ranked, scores, conf)  # type: ignore[arg-type]


def test_metrics_count_hits_mrr_and_answers() -> None:
    outcomes = [
        _outcome("a", ("a", "b"), (0.9, 0.2), "high"),  # right, answered
        _outcome("a", ("b", "a"), (0.9, 0.8), "high"),  # rank 2, answered wrongly
        _outcome("a", ("c", "d", "a"), (0.3, 0.2, 0.1), "medium"),  # rank 3, suggested
        _outcome("a", ("c",), (0.1,), "low"),  # not found
        _outcome(None, ("a",), (0.9,), "high"),  # false answer
        _outcome(None, ("a",), (0.2,), "low"),  # correctly unanswered
    ]
    m = metrics(outcomes)
    assert (m.queries, m.answerable, m.no_answer) == (6, 4, 2)
    assert m.hit_at_1 == 0.25 and m.hit_at_3 == 0.75
    assert m.mrr == round((1 + 1 / 2 + 1 / 3) / 4, 4)
    assert m.direct_accuracy == 0.25 and m.wrong_answer_rate == 0.25
    assert m.false_answer_rate == 0.5 and m.suggested_rate == 0.25
    assert len(report(outcomes).misses) == 4


def test_report_splits_metrics_by_split() -> None:
    outcomes = [_outcome("a", ("a",), (0.9,), "high", "dev"), _outcome("a", ("b",), (0.9,), "high", "holdout")]
    result = report(outcomes)
    assert result.splits["dev"].hit_at_1 == 1.0 and result.splits["holdout"].hit_at_1 == 0.0
    assert result.as_dict()["overall"]["hit_at_1"] == 0.5


def test_eval_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text('{"query": "a", "expected": null}\n{"query": "b"}\n', encoding="utf-8")
    with pytest.raises(EvalFileError, match=":2:"):
        load_cases(path)
    path.write_text('{"query": "a", "expected": null, "split": "dev"}\n\n{"query": "b", "expected": "Q?"}\n')
    assert [(c.line, c.split) for c in load_cases(path)] == [(1, "dev"), (3, None)]


def test_expected_labels_must_name_an_entry() -> None:
    entries = [make_entry({"id": "fee", "question": "运费怎么算？", "answer": "x"})]
    cases = [Case("a", "运费怎么算?", 1), Case("b", "fee", 2), Case("c", None, 3)]
    assert resolve_expected(cases, entries) == {1: "fee", 2: "fee", 3: None}
    with pytest.raises(EvalFileError, match="line 4"):
        resolve_expected([Case("d", "不存在的问题", 4)], entries)


def test_calibrate_picks_the_most_direct_answers_within_the_limits() -> None:
    outcomes = [_outcome("a", ("a", "b"), (0.8, 0.1), "low") for _ in range(10)]
    outcomes += [_outcome(None, ("a",), (0.5,), "low") for _ in range(10)]
    _, best = calibrate(outcomes, max_false=0.05)
    assert best is not None and 0.5 < best.high <= 0.8
    assert best.direct_accuracy == 1.0 and best.false_answer_rate == 0.0
