"""The pure chat-stream decoder: bytes of an OpenAI-compatible SSE stream in any split, model events out."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.errors import UpstreamError, UpstreamProtocolError
from kefu.llm.base import Finish, ModelEvent, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage
from kefu.llm.decoder import DONE, FAILED, FINISHING, STARTED, ChatStreamDecoder

REQUESTED = "deepseek-chat"
HEAD = b'data: {"id":"c1","object":"chat.completion.chunk","model":"deepseek-v4","choices":[{"index":0,"delta":'
TAIL = b',"finish_reason":null}]}\n\n'
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12, "prompt_cache_hit_tokens": 8}


def frame(delta: object, ending: bytes = b"\n") -> bytes:
    return (HEAD + orjson.dumps(delta) + TAIL).replace(b"\n", ending)


def finish_frame(reason: str = "stop") -> bytes:
    return HEAD + b'{},"finish_reason":"' + reason.encode() + b'"}],"usage":' + orjson.dumps(USAGE) + b"}\n\n"


ROLE = frame({"role": "assistant", "content": ""})
KEEPALIVE = b": keep-alive\n\n"
END = b"data: [DONE]\n\n"


@dataclass
class Outcome:
    events: list[ModelEvent]
    error: Exception | None


def decode(*reads: bytes) -> Outcome:
    """Feed ``reads`` in turn (stopping at a failure, as the stream does), then end the stream."""
    decoder = ChatStreamDecoder("up/deepseek-chat", REQUESTED)
    events: list[ModelEvent] = []
    try:
        for read in reads:
            events += decoder.feed(read)
            if decoder.error is not None:
                raise decoder.error
        events += decoder.end()
    except Exception as exc:
        return Outcome(events, exc)
    return Outcome(events, None)


def in_pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def test_decoder_text_usage_and_finish() -> None:
    body = KEEPALIVE + ROLE + frame({"content": "您好"}) + frame({"content": "！🚚"}) + finish_frame() + END
    outcome = decode(body)
    assert outcome.error is None
    assert outcome.events == [
        TextDelta("您好"),
        TextDelta("！🚚"),
        Usage(9, 3, 12, {"prompt_cache_hit_tokens": 8}),
        Finish("stop", "deepseek-v4", ()),
    ]


def test_decoder_role_chunk_and_keepalives_are_not_a_start() -> None:
    decoder = ChatStreamDecoder("up", REQUESTED)
    assert decoder.feed(KEEPALIVE + KEEPALIVE) == []
    assert (decoder.comments, decoder.dispatched, decoder.changes) == (2, 0, 0)
    assert decoder.feed(ROLE) == []
    assert (decoder.dispatched, decoder.started, decoder.changes) == (1, False, 0)
    assert decoder.feed(frame({"content": "a"})) == [TextDelta("a")]
    assert decoder.started and decoder.changes == STARTED


def test_decoder_changes_collect_until_cleared() -> None:
    decoder = ChatStreamDecoder("up", REQUESTED)
    decoder.feed(frame({"content": "a"}) + finish_frame())
    assert decoder.changes == STARTED | FINISHING and decoder.finish_reason == "stop"
    decoder.changes = 0
    decoder.feed(frame({"content": "b"}))
    assert decoder.changes == 0  # started only once
    decoder.feed(END)
    assert decoder.changes == DONE and decoder.done


def test_decoder_reasoning_then_text_in_one_chunk() -> None:
    outcome = decode(frame({"content": "答", "reasoning_content": "想"}) + END)
    assert outcome.events[:2] == [ReasoningDelta("想"), TextDelta("答")]


def test_decoder_tool_call_fragments_become_finish_tool_calls() -> None:
    body = (
        frame({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "lookup", "arguments": ""}}]})
        + frame({"tool_calls": [{"index": 0, "function": {"arguments": '{"id":'}}]})
        + frame({"tool_calls": [{"index": 0, "function": {"arguments": '"A1"}'}}]})
        + finish_frame("tool_calls")
        + END
    )
    outcome = decode(body)
    assert outcome.events[0] == ToolCallDelta(0, "call_a", "lookup", "")
    finish = outcome.events[-1]
    assert isinstance(finish, Finish)
    assert finish.reason == "tool_calls"
    assert finish.tool_calls == (ToolCall("call_a", "lookup", '{"id":"A1"}'),)


def test_decoder_error_object_comes_after_the_events_before_it() -> None:
    error = b'data: {"error":{"message":"Server overloaded","type":"server_error"}}\n\n'
    decoder = ChatStreamDecoder("up", REQUESTED)
    assert decoder.feed(frame({"content": "a"}) + error + frame({"content": "b"})) == [TextDelta("a")]
    assert isinstance(decoder.error, UpstreamError) and decoder.error.retryable
    assert decoder.changes & FAILED
    assert decoder.feed(frame({"content": "c"})) == []  # nothing more is decoded
    with pytest.raises(UpstreamError, match="Server overloaded"):
        list(decoder.end())


def test_decoder_error_event_name_is_an_error() -> None:
    outcome = decode(b'event: error\ndata: {"message":"bad request"}\n\n')
    assert isinstance(outcome.error, UpstreamError)
    assert not outcome.error.retryable and "bad request" in str(outcome.error)


@pytest.mark.parametrize("raw", [b"{not json", b"5", b"[1]"])
def test_decoder_unreadable_chunk_is_a_protocol_error(raw: bytes) -> None:
    outcome = decode(b"data: " + raw + b"\n\n")
    assert isinstance(outcome.error, UpstreamProtocolError)
    assert isinstance(outcome.error.__cause__, orjson.JSONDecodeError | AttributeError)


def test_decoder_ignores_everything_after_done_but_counts_it() -> None:
    decoder = ChatStreamDecoder("up", REQUESTED)
    assert decoder.feed(frame({"content": "a"}) + END + frame({"content": "late"}) + b"data: junk\n\n") == [
        TextDelta("a")
    ]
    assert decoder.dispatched == 4 and decoder.error is None
    assert list(decoder.end()) == [Finish("stop", "deepseek-v4", ())]


def test_decoder_end_without_done_is_a_protocol_error() -> None:
    outcome = decode(frame({"content": "a"}))
    assert isinstance(outcome.error, UpstreamProtocolError) and "without [DONE]" in str(outcome.error)
    assert outcome.events == [TextDelta("a")]


def test_decoder_done_without_its_blank_line_still_ends_the_stream() -> None:
    assert decode(frame({"content": "a"}) + b"data: [DONE]").error is None


def test_decoder_unterminated_event_at_the_end_is_only_a_done_check() -> None:
    decoder = ChatStreamDecoder("up", REQUESTED)
    assert decoder.feed(frame({"content": "a"}) + frame({"content": "b"})[:-2]) == [TextDelta("a")]
    assert decoder.flush() == [] and not decoder.done  # "b" is never decoded
    with pytest.raises(UpstreamProtocolError, match="without"):
        list(decoder.end())


def test_decoder_insufficient_resource_finish_is_a_retryable_error() -> None:
    outcome = decode(frame({"content": "a"}) + finish_frame("insufficient_system_resource") + END)
    assert isinstance(outcome.error, UpstreamError)
    assert outcome.error.code == "upstream_overloaded" and outcome.error.retryable


def test_decoder_model_falls_back_to_the_requested_one() -> None:
    outcome = decode(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n' + END)
    assert outcome.events[-1] == Finish("stop", REQUESTED, ())


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_decoder_every_split_point_gives_the_same_events(ending: bytes) -> None:
    body = (KEEPALIVE + ROLE + frame({"content": "运费 €5 🚚"}) + finish_frame() + END).replace(b"\n", ending)
    whole = decode(body)
    assert whole.error is None
    for cut in range(1, len(body)):
        assert decode(*in_pieces(body, [cut])) == whole, f"split at byte {cut}"
    assert decode(*in_pieces(body, list(range(1, len(body))))) == whole


def test_decoder_split_inside_a_multibyte_character() -> None:
    body = frame({"content": "好"}) + END
    cut = body.index("好".encode()) + 1
    assert decode(body[:cut], body[cut:]).events[0] == TextDelta("好")


# ---------------------------------------------------------------------------------------------- property test

TEXT = st.text(st.one_of(st.sampled_from('您好运费€🚚😀"\\\n é'), st.characters(exclude_categories=["Cs"])), max_size=6)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[ModelEvent]]:
    """A random upstream body (text, reasoning, tool calls, keep-alives, usage; LF or CRLF) and its events."""
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = [KEEPALIVE] * draw(st.integers(0, 2)) + [ROLE]
    expected: list[ModelEvent] = []
    for kind in draw(st.lists(st.sampled_from(["text", "reasoning", "keepalive"]), max_size=12)):
        if kind == "keepalive":
            body.append(KEEPALIVE)
            continue
        piece = draw(TEXT)
        body.append(frame({"content": piece} if kind == "text" else {"content": None, "reasoning_content": piece}))
        if piece:
            expected.append(TextDelta(piece) if kind == "text" else ReasoningDelta(piece))
    calls: list[ToolCall] = []
    for index in range(draw(st.integers(0, 2))):
        call = ToolCall(f"call_{index}", draw(st.sampled_from(["lookup_order", "get_shipping"])), "")
        body.append(frame({"tool_calls": [{"index": index, "id": call.id, "function": {"name": call.name}}]}))
        expected.append(ToolCallDelta(index, call.id, call.name, ""))
        for part in draw(st.lists(TEXT.filter(bool), max_size=3)):
            body.append(frame({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
            expected.append(ToolCallDelta(index, None, None, part))
            call = ToolCall(call.id, call.name, call.arguments + part)
        calls.append(call)
    body.append(finish_frame("tool_calls" if calls else "stop"))
    body.append(END)
    expected.append(Usage(9, 3, 12, {"prompt_cache_hit_tokens": 8}))
    expected.append(Finish("tool_calls" if calls else "stop", "deepseek-v4", tuple(calls)))
    return b"".join(part.replace(b"\n", ending) for part in body), expected


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_decoder_any_split_gives_the_events_of_the_whole(
    stream: tuple[bytes, list[ModelEvent]], data: st.DataObject
) -> None:
    body, expected = stream
    whole = decode(body)
    assert whole == Outcome(expected, None)
    cuts = data.draw(st.lists(st.integers(1, len(body) - 1), max_size=40))
    assert decode(*in_pieces(body, cuts)) == whole
