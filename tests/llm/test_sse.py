"""The incremental SSE parser: every split, every line ending, the spec's corner cases."""

from __future__ import annotations

import orjson
import pytest

from kefu.llm.sse import SSEEvent, SSEParser

STREAM = (
    ": keep-alive\n"
    "\n"
    "\n"
    ': keep-alive\n\ndata: {"choices":[{"delta":{"content":"您好！"}}]}\n\n'
    'data: {"choices":[{"delta":{"content":"运费 €5 🚚"}}]}\n\n'
    "event: note\nid: 7\ndata: line one\ndata: 第二行\n\n"
    "data: [DONE]\n\n"
).encode()

EXPECTED = [
    SSEEvent("message", '{"choices":[{"delta":{"content":"您好！"}}]}'.encode(), None),
    SSEEvent("message", '{"choices":[{"delta":{"content":"运费 €5 🚚"}}]}'.encode(), None),
    SSEEvent("note", "line one\n第二行".encode(), "7"),
    SSEEvent("message", b"[DONE]", "7"),
]


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    edges = [0, *cuts, len(data)]
    for a, b in zip(edges, edges[1:], strict=False):
        events.extend(parser.feed(data[a:b]))
    return events


def test_sse_whole_stream_parses_to_expected_events() -> None:
    assert parse_in_pieces(STREAM, []) == EXPECTED


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_sse_split_at_every_byte_gives_same_events(ending: str) -> None:
    data = STREAM.replace(b"\n", ending.encode())
    for cut in range(1, len(data)):
        assert parse_in_pieces(data, [cut]) == EXPECTED, f"split at byte {cut}"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_sse_byte_at_a_time_gives_same_events(ending: str) -> None:
    data = STREAM.replace(b"\n", ending.encode())
    assert parse_in_pieces(data, list(range(1, len(data)))) == EXPECTED


def test_sse_split_inside_multibyte_char_decodes_whole_char() -> None:
    data = "data: 您好\n\n".encode()
    first = data.index("好".encode()) + 1  # inside the 3-byte character
    parser = SSEParser()
    assert parser.feed(data[:first]) == []
    [event] = parser.feed(data[first:])
    assert event.data == "您好"
    assert orjson.loads(b'"' + event.raw + b'"') == "您好"


def test_sse_comments_and_blank_lines_alone_produce_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b": keep-alive\n\n\n\n: keep-alive\r\n\r\n") == []
    assert parser.comments == 2


def test_sse_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # If the LF opening this read were a second line end, "a" would be dispatched alone.
    assert parser.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("message", b"a\nb", None)]


def test_sse_data_without_space_and_bare_data_field() -> None:
    events = SSEParser().feed(b"data:x\ndata\ndata:  y\n\n")
    assert [e.data for e in events] == ["x\n\n y"]


def test_sse_id_persists_and_nul_id_is_ignored() -> None:
    events = SSEParser().feed(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "1")]


def test_sse_event_name_resets_after_dispatch() -> None:
    events = SSEParser().feed(b"event: error\ndata: x\n\ndata: y\n\n")
    assert [e.event for e in events] == ["error", "message"]


def test_sse_unknown_fields_and_retry_are_ignored() -> None:
    events = SSEParser().feed(b"retry: 10\nfoo: bar\ndata: z\n\n")
    assert events == [SSEEvent("message", b"z", None)]


def test_sse_leading_bom_is_stripped_even_when_split() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb") == []
    assert parser.feed(b"\xbfdata: ok\n\n") == [SSEEvent("message", b"ok", None)]


def test_sse_unterminated_event_needs_flush() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.flush() == [SSEEvent("message", b"[DONE]", None)]
    assert parser.flush() == []


def test_sse_invalid_utf8_is_replaced_not_raised() -> None:
    [event] = SSEParser().feed(b"data: \xff\n\n")
    assert event.data == "\ufffd"


def test_sse_dispatched_counts_events_not_comments() -> None:
    parser = SSEParser()
    parser.feed(b": keep-alive\n\ndata: a\n\n\n\nevent: x\n\ndata: b\ndata: c\n\n")
    assert (parser.dispatched, parser.comments) == (2, 1)
