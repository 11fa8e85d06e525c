"""A connection's streams compressed with raw DEFLATE (RFC 1951), for IMAP COMPRESS (RFC 4978).

compressed() puts an inflating reader and a deflating writer in front of a connection's
asyncio streams (after TLS, if any: TLS carries the compressed octets). Sessions keep
using them as StreamReader and StreamWriter. Output is flushed (Z_SYNC_FLUSH) at each
drain(), so every response a session has drained reaches the client whole (RFC 4978
section 4). Inflating is bounded: at most 64 KiB at a time, and none while the reader
holds more than twice its limit, so a small "compression bomb" costs no memory.
"""

from __future__ import annotations

import asyncio
import zlib

CHUNK = 64 * 1024
_RAW = -15  # zlib's wbits for raw DEFLATE: no zlib header or checksum (RFC 4978 section 4)


class _Gate:
    """What StreamReader takes for a transport: it pauses and resumes the inflating pump."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    def pause_reading(self) -> None:
        self.open.clear()

    def resume_reading(self) -> None:
        self.open.set()


class DeflateWriter:
    """A StreamWriter's interface over another, compressing what is written."""

    def __init__(self, inner: asyncio.StreamWriter) -> None:
        self.inner = inner
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, _RAW)

    @property
    def transport(self) -> asyncio.BaseTransport:
        return self.inner.transport

    def get_extra_info(self, name: str, default=None):
        return self.inner.get_extra_info(name, default)

    def write(self, data: bytes) -> None:
        if data:
            self.inner.write(self._compressor.compress(data))

    async def drain(self) -> None:
        self.inner.write(self._compressor.flush(zlib.Z_SYNC_FLUSH))
        await self.inner.drain()

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def close(self) -> None:
        if not self.inner.is_closing():
            self.inner.write(self._compressor.flush(zlib.Z_FINISH))
        self.inner.close()

    async def wait_closed(self) -> None:
        await self.inner.wait_closed()


async def _inflate(source: asyncio.StreamReader, target: asyncio.StreamReader,
                   gate: _Gate) -> None:
    decompressor = zlib.decompressobj(_RAW)
    try:
        while chunk := await source.read(CHUNK):
            while chunk:
                target.feed_data(decompressor.decompress(chunk, CHUNK))
                chunk = decompressor.unconsumed_tail
                await gate.open.wait()  # the session has read enough of it
            if decompressor.eof:
                break  # the client finished its stream: nothing more is readable
        target.feed_eof()
    except zlib.error:
        target.set_exception(ConnectionResetError("invalid DEFLATE data"))
    except (ConnectionError, OSError) as exc:
        target.set_exception(exc)


def compressed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int
               ) -> tuple[asyncio.StreamReader, DeflateWriter, asyncio.Task]:
    """Return (reader, writer, pump): the streams to use from now on, and the task that
    inflates what arrives (cancel it when the session ends).

    Octets already buffered in reader are the first compressed ones.
    """
    inflated = asyncio.StreamReader(limit=limit)
    gate = _Gate()
    inflated.set_transport(gate)  # feed_data() pauses and resumes the pump through it
    pump = asyncio.ensure_future(_inflate(reader, inflated, gate))
    return inflated, DeflateWriter(writer), pump
