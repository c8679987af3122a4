"""The benchmarks' load generator: a bare HTTP/1.1 keep-alive client."""

from __future__ import annotations

import asyncio

__all__ = ["RawConnection"]


class RawConnection:
    """A bare HTTP/1.1 keep-alive connection (asyncio streams): the request bytes out, the
    status line, headers and a Content-Length body in. About 0.1 ms of client CPU a
    request here, where an httpx AsyncClient takes 3 to 10 ms (h11, anyio, its pool), so
    that the load generator, sharing the machine, does not cap the rows it measures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}".encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        try:
            answer = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in answer.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            content = await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            return 0, b""
        if close:
            await self.close()
        return int(answer[9:12]), content

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None
