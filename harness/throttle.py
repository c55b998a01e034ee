"""A token-bucket TCP proxy: one bandwidth cap shared by every connection to a site.

nginx's ``limit_rate`` is per connection (eight connections get eight times the rate), and it
has no aggregate limit. This proxy listens on the site's public ports and forwards each client
connection to nginx on a private port, one upstream connection per client connection (so
keep-alive, TLS sessions and nginx's ``$connection`` numbers are unchanged: TLS passes through,
the proxy never decrypts). Bytes from nginx to the clients draw from ONE token bucket:

* the cap is on TCP payload leaving the proxy (HTTP headers, bodies and TLS records), summed
  over every connection and every port of the site;
* the bucket holds at most one chunk (``--chunk``, default rate/50 within 16-256 KiB), so a
  burst after an idle spell is one chunk, and the long-run rate is exactly ``--rate``;
* waiting connections are served first come, first served (an asyncio.Lock is FIFO), so N
  busy connections each get about rate/N;
* client-to-server bytes (requests) are not limited.

nginx sees the proxy as a fast client: its log counts bytes handed to the proxy (at most a
socket buffer and one chunk ahead of the client per connection), and ``$request_time`` ends
when nginx has written the response, not when the client has read it.

Run as ``python -m harness.throttle --rate BYTES_PER_S LISTEN_PORT:UPSTREAM_PORT...``; it prints
``ready`` once every port is bound and runs until SIGTERM. The harness's nginx launcher starts
it for a site with ``total_rate``; nothing else here imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time

_UPSTREAM_RCVBUF = 256 * 1024  # keeps nginx's view of "sent" close to what clients received


def default_chunk(rate: int) -> int:
    return max(16 * 1024, min(256 * 1024, rate // 50))


class Bucket:
    """Tokens are bytes; ``rate`` of them arrive per second, at most ``burst`` are kept.

    Kept as a clock: ``due`` is when the bytes granted so far have all "left" at ``rate``
    (never earlier than ``burst`` bytes ago: an idle link banks no more). A grant of n bytes
    moves it n/rate later and waits until then if that is in the future. A taker that wakes
    late (a busy event loop with dozens of connections) loses nothing: the clock moved by the
    bytes, not by the sleep. (Counting tokens capped at ``burst`` instead lost every oversleep
    once chunks were as big as the burst: 32 connections through a 100 MiB/s cap got 75.)
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.due = time.monotonic() - self.burst / self.rate  # a full bucket
        self.lock = asyncio.Lock()

    @property
    def tokens(self) -> float:
        """Bytes that could be sent now without waiting (negative: owed)."""
        return min(self.burst, (time.monotonic() - self.due) * self.rate)

    async def take(self, n: int) -> None:
        async with self.lock:  # FIFO: one connection at a time waits for its tokens
            now = time.monotonic()
            self.due = max(self.due, now - self.burst / self.rate) + n / self.rate
            wait = self.due - now
            if wait > 0:
                await asyncio.sleep(wait)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunk: int,
                bucket: Bucket | None) -> None:
    try:
        while data := await reader.read(chunk):
            if bucket is not None:
                await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _serve(listen: int, upstream: int, bucket: Bucket, chunk: int) -> asyncio.Server:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UPSTREAM_RCVBUF)
        s.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", upstream))
            u_reader, u_writer = await asyncio.open_connection(sock=s)
        except OSError:
            s.close()
            c_writer.close()
            return
        down = asyncio.create_task(_pipe(u_reader, c_writer, chunk, bucket))
        up = asyncio.create_task(_pipe(c_reader, u_writer, chunk, None))
        await down  # the server is done (or gone): close both sides
        up.cancel()
        for w in (u_writer, c_writer):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", listen, reuse_address=True)


async def _main(rate: int, chunk: int, pairs: list[tuple[int, int]]) -> None:
    bucket = Bucket(rate, chunk)
    servers = [await _serve(lp, up, bucket, chunk) for lp, up in pairs]
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="token-bucket TCP proxy (one cap for all)")
    p.add_argument("--rate", type=int, required=True, help="bytes per second, all connections")
    p.add_argument("--chunk", type=int, default=0, help="bucket size and read size (bytes)")
    p.add_argument("pairs", nargs="+", help="LISTEN_PORT:UPSTREAM_PORT on 127.0.0.1")
    a = p.parse_args(argv)
    pairs = [(int(x), int(y)) for x, _, y in (s.partition(":") for s in a.pairs)]
    try:
        asyncio.run(_main(a.rate, a.chunk or default_chunk(a.rate), pairs))
    except OSError as e:  # a port taken between probe and bind: the launcher retries
        print(f"throttle: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
