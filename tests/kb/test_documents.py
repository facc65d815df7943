"""Documents: Markdown sections keep their title path, chunks overlap, HTML and plain text load."""

from __future__ import annotations

from pathlib import Path

from kefu.content.problems import LoadReport
from kefu.kb.documents import chunk, html_to_markdown, load_document, markdown_sections


def test_markdown_sections_keep_the_title_path() -> None:
    text = "# 尺码指南\n引言。\n## 上衣\n上衣表。\n### 测量\n怎么量。\n## 裤子\n裤子表。\n"
    sections = markdown_sections(text, "fallback")
    assert [(s.titles, s.text, s.line) for s in sections] == [
        (("尺码指南",), "引言。", 1),
        (("尺码指南", "上衣"), "上衣表。", 3),
        (("尺码指南", "上衣", "测量"), "怎么量。", 5),
        (("尺码指南", "裤子"), "裤子表。", 7),
    ]


def test_markdown_without_heading_uses_the_file_name_as_title() -> None:
    [section] = markdown_sections("只是一段话。", "about")
    assert section.titles == ("about",)


def test_chunk_overlap_shares_text_between_neighbours() -> None:
    sentences = [f"第{i}句话说了一些事情。" for i in range(40)]
    pieces = chunk("".join(sentences), size=60, overlap=20)
    assert len(pieces) > 5
    assert all(len(p) <= 60 for p in pieces)
    for left, right in zip(pieces, pieces[1:], strict=False):
        first_sentence = right[: right.index("。") + 1]
        assert first_sentence in left  # the next chunk starts with the end of the previous one
    assert "".join(sentences).endswith(pieces[-1][-20:])
    assert all(s in "".join(pieces) for s in sentences)


def test_chunk_cuts_an_overlong_sentence_hard() -> None:
    pieces = chunk("字" * 250, size=100, overlap=10)
    assert [len(p) for p in pieces][:2] == [100, 100] and sum(len(p) for p in pieces) >= 250


def test_html_document_headings_become_titles_and_scripts_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "care.html"
    path.write_text(
        "<html><head><style>p{}</style><script>var x = 1;</script></head><body>"
        "<h1>保养</h1><p>总体说明。</p><h2>羽绒服</h2><p>手洗，&lt;30℃。</p>"
        "<table><tr><td>温度</td><td>30</td></tr></table></body></html>",
        encoding="utf-8",
    )
    report = LoadReport()
    entries = load_document(path, report, origin="bot")
    assert [(e.kind, e.question) for e in entries] == [("doc", "保养"), ("doc", "保养 › 羽绒服")]
    assert "手洗，<30℃。" in entries[1].answer and "温度" in entries[1].answer
    assert all("var x" not in e.answer for e in entries)
    assert "# 保养" in html_to_markdown(path.read_text(encoding="utf-8"))


def test_txt_document_is_one_section_titled_by_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("第一段。\n\n第二段。", encoding="utf-8")
    [entry] = load_document(path, LoadReport(), origin="bot")
    assert entry.question == "notes" and entry.answer == "第一段。\n\n第二段。"
    assert entry.id == load_document(path, LoadReport(), origin="bot")[0].id  # stable ids
