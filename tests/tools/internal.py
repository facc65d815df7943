"""An internal service tools must never reach: a listener on another loopback address that counts connections.

It listens on ``127.0.0.2`` at the merchant backend's port, so the only difference between reaching the merchant and
reaching it is the address a connection goes to — what a DNS answer that changes after the check would pick.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

ADDRESS = "127.0.0.2"


@dataclass
class Internal:
    """The running listener: ``connections`` counts every TCP connection it accepted."""

    port: int
    connections: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\ninternal")
        await writer.drain()
        writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, ADDRESS, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
