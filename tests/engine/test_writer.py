import asyncio

from kefu.engine.events import DeltaEvent, decode_event
from kefu.engine.writer import DeltaWriter


async def test_delta_writer_sends_first_piece_at_once_and_coalesces_the_rest() -> None:
    writes: list[list[tuple[str, str]]] = []

    async def append(events: list[tuple[str, str]]) -> int:
        writes.append(events)
        return len(writes)

    writer = DeltaWriter(append, interval=0.05)
    writer.start()
    writer.write("你")
    await asyncio.sleep(0.01)
    assert len(writes) == 1  # the first token is not held back
    for piece in "好，世界！":
        writer.write(piece)
    await writer.close()
    texts = [_text(*batch[0]) for batch in writes]
    assert "".join(texts) == "你好，世界！"
    assert len(writes) == 2  # everything after the first piece went out as one event
    assert writer.text == "你好，世界！"


async def test_delta_writer_waits_for_user_message_before_first_write() -> None:
    order: list[str] = []
    stored = asyncio.Event()

    async def store_user_message() -> None:
        await stored.wait()
        order.append("stored")

    async def append(events: list[tuple[str, str]]) -> int:
        order.append("delta")
        return 1

    durable = asyncio.create_task(store_user_message())
    writer = DeltaWriter(append, interval=0, before_first=durable)
    writer.start()
    writer.write("hi")
    await asyncio.sleep(0.02)
    assert order == []
    stored.set()
    await writer.close()
    assert order == ["stored", "delta"]


async def test_delta_writer_stops_when_log_refuses() -> None:
    async def append(events: list[tuple[str, str]]) -> None:
        return None

    writer = DeltaWriter(append, interval=0)
    writer.start()
    writer.write("x")
    await writer.close()
    assert writer.refused
    assert writer.written_chars == 0


async def test_delta_writer_close_does_not_wait_for_the_next_tick() -> None:
    writes: list[str] = []

    async def append(events: list[tuple[str, str]]) -> int:
        writes.append(_text(*events[0]))
        return len(writes)

    writer = DeltaWriter(append, interval=30.0)  # a tick far away
    writer.start()
    writer.write("first")
    await asyncio.sleep(0.01)
    writer.write(" rest")
    await asyncio.wait_for(writer.close(), 5)  # fails (TimeoutError) if close waited for the tick
    assert writes == ["first", " rest"]


def _text(name: str, data: str) -> str:
    event = decode_event(name, data)
    assert isinstance(event, DeltaEvent)
    return event.text
