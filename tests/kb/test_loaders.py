"""FAQ files: CSV, JSONL, Markdown; bad rows reported with file and line; duplicates; validity windows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kefu.content.problems import LoadReport
from kefu.kb.entries import EntryError, make_entry
from kefu.kb.loaders import dedupe, load_csv, load_jsonl, load_markdown_faq


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_loader_splits_similar_questions_on_pipe(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "faq.csv",
        "question,answer,similar_questions,category\n运费怎么算？,满99包邮,邮费多少| 包邮吗 |,配送\n",
    )
    report = LoadReport()
    [entry] = load_csv(path, report, origin="bot")
    assert entry.similar == ("邮费多少", "包邮吗")
    assert (entry.question, entry.answer, entry.category, entry.origin) == ("运费怎么算？", "满99包邮", "配送", "bot")
    assert report.problems == []


def test_csv_loader_reports_bad_rows_with_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "faq.csv",
        "question,answer,valid_from\n"
        'ok one,"multi\nline answer",\n'  # lines 2-3
        "no answer,,\n"  # line 4
        "bad date,fine,2025-13-45\n"  # line 5
        "too,many,cells,here\n"  # line 6
        ",missing question,\n",  # line 7
    )
    report = LoadReport()
    entries = load_csv(path, report, origin="bot")
    assert [e.question for e in entries] == ["ok one"]
    assert entries[0].answer == "multi\nline answer"
    problems = {p.line: p.reason for p in report.skipped}
    assert set(problems) == {4, 5, 6, 7}
    assert "answer is empty" in problems[4]
    assert "ISO date" in problems[5]
    assert "cells" in problems[6]
    assert "question is empty" in problems[7]
    assert all(p.file == str(path) for p in report.skipped)
    assert str(report.skipped[0]).startswith(f"{path}:4: skipped:")


def test_csv_loader_reads_chinese_headers_and_gb18030(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", "问题,答案,相似问题\n怎么退货？,申请售后即可,退货流程|如何退货\n", "gb18030")
    report = LoadReport()
    [entry] = load_csv(path, report, origin="bot")
    assert entry.question == "怎么退货？" and entry.similar == ("退货流程", "如何退货")
    assert [p.skipped for p in report.problems] == [False]  # a warning that the file was not UTF-8
    assert "GB18030" in report.problems[0].reason


def test_csv_loader_rejects_a_file_without_a_question_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", "q,a\nx,y\n")
    report = LoadReport()
    assert load_csv(path, report, origin="bot") == []
    assert report.skipped[0].line == 1 and "question" in report.skipped[0].reason


def test_jsonl_loader_reads_lists_and_reports_bad_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "faq.jsonl",
        '{"question": "怎么注册？", "answer": "用手机号", "similar_questions": ["注册", "sign up"]}\n'
        "\n"
        "{not json}\n"
        '["a list"]\n'
        '{"question": "x", "answer": "y", "similar_questions": 5}\n',
    )
    report = LoadReport()
    [entry] = load_jsonl(path, report, origin="bot")
    assert entry.similar == ("注册", "sign up")
    assert {p.line for p in report.skipped} == {3, 4, 5}
    assert "JSON" in report.skipped[0].reason and "list" in report.skipped[2].reason


def test_markdown_faq_reads_questions_similar_questions_and_categories(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "faq.md",
        "# 会员\n\n"
        "## 积分怎么用？\n"
        "id: points\n"
        "相似问法：积分抵现 | 积分兑换\n\n"
        "100积分抵1元。\n\n- 单笔最多抵20%\n\n"
        "## 空的问题？\n\n"
        "# 账号\n"
        "## 怎么注销？\n"
        "在设置里注销。\n",
    )
    report = LoadReport()
    entries = load_markdown_faq(path, report, origin="bot")
    assert [(e.id, e.question, e.category) for e in entries][0] == ("points", "积分怎么用？", "会员")
    assert entries[0].similar == ("积分抵现", "积分兑换")
    assert entries[0].answer == "100积分抵1元。\n\n- 单笔最多抵20%"
    assert entries[1].question == "怎么注销？" and entries[1].category == "账号"
    assert [(p.line, "answer is empty" in p.reason) for p in report.skipped] == [(11, True)]


def test_dedupe_reports_a_repeated_question_with_where_it_first_was(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", "question,answer\n运费怎么算？,a\n运费怎么算?,b\n")
    report = LoadReport()
    entries = dedupe(load_csv(path, report, origin="bot"), report)
    assert [e.answer for e in entries] == ["a"]
    assert report.skipped[0].line == 3 and f"{path}:2" in report.skipped[0].reason


def test_entry_validity_window_includes_the_whole_last_day() -> None:
    entry = make_entry(
        {"question": "双十一活动？", "answer": "…", "valid_from": "2025-11-01", "valid_to": "2025-11-11"}
    )
    assert not entry.valid_at(datetime(2025, 10, 31, 23, tzinfo=UTC))
    assert entry.valid_at(datetime(2025, 11, 11, 23, 59, tzinfo=UTC))
    assert not entry.valid_at(datetime(2025, 11, 12, tzinfo=UTC))
    with pytest.raises(EntryError, match="after"):
        make_entry({"question": "q", "answer": "a", "valid_from": "2025-11-11", "valid_to": "2025-11-01"})


def test_entry_ids_are_stable_and_validated() -> None:
    a = make_entry({"question": "运费怎么算？", "answer": "x"})
    b = make_entry({"question": "运费怎么算?", "answer": "y"})
    assert a.id == b.id and a.id.startswith("faq-")
    with pytest.raises(EntryError, match="id"):
        make_entry({"id": "has space", "question": "q", "answer": "a"})


def test_csv_loader_reports_an_unclosed_quote_as_a_syntax_error_at_its_row(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", 'question,answer\n运费,8元\n"退货,7天\n发票,可以\n')
    report = LoadReport()
    assert load_csv(path, report, origin="bot") == []  # the rows after it cannot be trusted: none are imported
    [problem] = report.skipped
    assert problem.line == 3 and "CSV syntax error" in problem.reason and "never closed" in problem.reason


def test_csv_loader_names_the_expected_columns_for_an_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", "")
    report = LoadReport()
    assert load_csv(path, report, origin="bot") == []
    assert report.skipped[0].line == 1 and "question and answer columns" in report.skipped[0].reason
