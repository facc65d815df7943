"""Incremental Server-Sent Events parser over bytes (WHATWG HTML §9.2.6).

Feed it whatever the socket gave you; it returns the events completed so far. Only whole lines are ever
decoded, so a multi-byte UTF-8 character split across reads is never decoded in halves. The work per read is
a handful of ``bytes`` operations plus a little Python per *line*, never per byte.

:class:`SSEFramer` does the framing (lines, fields, dispatch) and hands each dispatched event to its
subclass's ``_emit``: :class:`SSEParser` makes :class:`SSEEvent` values of them; a decoder for one wire format
(:mod:`kefu.llm.decoder`) turns them straight into its own events.
"""

from __future__ import annotations

from typing import Generic, TypeVar

_BOM = b"\xef\xbb\xbf"
T = TypeVar("T")


class SSEEvent:
    """One dispatched event. ``raw`` is the data as bytes (feed it to ``orjson.loads`` directly)."""

    __slots__ = ("event", "id", "raw")

    def __init__(self, event: str, raw: bytes, id: str | None) -> None:
        self.event = event
        self.raw = raw
        self.id = id

    @property
    def data(self) -> str:
        """The data field as text (lines joined with ``\\n``)."""
        return self.raw.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return (self.event, self.raw, self.id) == (other.event, other.raw, other.id)

    __hash__ = None  # type: ignore[assignment]


class SSEFramer(Generic[T]):
    """Turns a byte stream into dispatched events, each handed to :meth:`_emit` (subclasses say what they become).

    Lines may end in CRLF, LF or CR (a CR at the very end of a read is a line end; an LF opening the next read
    is then swallowed). Comment lines (``: keep-alive``) and blank lines that end no event produce nothing.
    ``comments`` counts the comment lines seen, for callers that care about liveness; ``dispatched`` counts the
    events dispatched (data received, as opposed to keep-alives).
    """

    __slots__ = ("_buf", "_data", "_event", "_id", "_last_id", "_skip_lf", "_started", "comments", "dispatched")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._id: str | None = None
        self._last_id: str | None = None
        self._skip_lf = False
        self._started = False
        self.comments = 0
        self.dispatched = 0

    def feed(self, chunk: bytes) -> list[T]:
        """Consume ``chunk``; return what the events it completed became, in order."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        data = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(data) < 3 and _BOM.startswith(data):
                self._buf = data
                return []
            self._started = True
            if data[:3] == _BOM:
                data = data[3:]
        if b"\r" in data:
            if data[-1:] == b"\r":
                self._skip_lf = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._buf = data
            return []
        lines = data.split(b"\n")
        self._buf = lines.pop()
        out: list[T] = []
        for line in lines:
            if not line:
                self._dispatch(out)
            elif line[:5] == b"data:":
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:1] == b":":
                self.comments += 1
            else:
                self._field(line)
        return out

    def flush(self) -> list[T]:
        """End of stream: dispatch an event left without its closing blank line (lenient), then reset.

        The spec discards such an event; upstreams that forget the final blank line after ``data: [DONE]``
        exist, so the caller decides whether to trust what this returns.
        """
        self._skip_lf = False
        out = self.feed(b"\n") if self._buf else []
        self._dispatch(out)
        self._buf = b""
        self._skip_lf = False
        return out

    def _emit(self, event: bytes | None, raw: bytes, out: list[T]) -> None:
        """Handle one dispatched event: its ``event`` field (None if it had none) and its data as bytes."""
        raise NotImplementedError

    def _field(self, line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value
        elif name == b"id":
            if b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"data":  # "data" without a colon: an empty data line
            self._data.append(value)
        # "retry" and unknown fields are ignored: this client reconnects by its own rules.

    def _dispatch(self, out: list[T]) -> None:
        if self._id is not None:
            self._last_id = self._id
            self._id = None
        data = self._data
        if not data:
            self._event = None
            return
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        self._data = []
        event = self._event
        self._event = None
        self.dispatched += 1
        self._emit(event, raw, out)


class SSEParser(SSEFramer[SSEEvent]):
    """Turns a byte stream into :class:`SSEEvent` values (see :class:`SSEFramer` for the framing rules)."""

    __slots__ = ()

    def _emit(self, event: bytes | None, raw: bytes, out: list[SSEEvent]) -> None:
        out.append(SSEEvent(event.decode("utf-8", "replace") if event else "message", raw, self._last_id))
