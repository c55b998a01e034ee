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

With ``--delay D`` it is also a far link: every byte waits D seconds each way (a round trip of
2D), and each connection's bytes from nginx in flight (sent, not yet "acknowledged" D later) are
bounded by a congestion window that starts at ``INITIAL_WINDOW`` and grows by the bytes
acknowledged (TCP's slow start: it doubles each round trip) up to ``--window``. So one
connection moves at most window / round trip (2 MiB over 80 ms: 25 MiB/s), a new connection
starts slower still, and every request and TLS handshake costs round trips: what a CDN far away
looks like, where ``tc netem`` is not available (no ``sch_netem`` module, no privileges).
``--rate 0``: no bandwidth cap, only the delay.

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
#: A new connection's congestion window (bytes): Linux's 10 segments, rounded up.
INITIAL_WINDOW = 16 * 1024


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


class FarLink:
    """One direction of one connection over a far link: bytes leave ``delay`` s after they
    came, in order; with ``window``, at most a congestion window of them is in flight."""

    def __init__(self, writer: asyncio.StreamWriter, delay: float, window: int | None) -> None:
        self.writer = writer
        self.delay = delay
        self.max_window = window
        self.window = INITIAL_WINDOW if window else 0
        self.in_flight = 0
        self.acked = asyncio.Event()
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    def room(self) -> int:
        """Bytes that may be sent now (a huge number without a window)."""
        return self.window - self.in_flight if self.max_window else 1 << 30

    async def wait_room(self) -> None:
        while self.room() <= 0:
            self.acked.clear()
            await self.acked.wait()

    def put(self, data: bytes | None) -> None:
        if data:
            self.in_flight += len(data)
        self.queue.put_nowait((time.monotonic() + self.delay, data))

    def _ack(self, n: int) -> None:
        self.in_flight -= n
        if self.max_window:
            self.window = min(self.max_window, self.window + n)  # slow start
        self.acked.set()

    async def send(self) -> None:
        """Task: write each piece when it is due; its acknowledgement comes ``delay`` later."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await self.queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                self.writer.write(data)
                await self.writer.drain()
                loop.call_later(self.delay, self._ack, len(data))
        except (ConnectionError, OSError):
            pass


async def _far_pipe(reader: asyncio.StreamReader, link: FarLink, chunk: int,
                    bucket: Bucket | None) -> None:
    sender = asyncio.create_task(link.send())
    try:
        while True:
            await link.wait_room()
            data = await reader.read(min(chunk, link.room()))
            if not data:
                break
            if bucket is not None:
                await bucket.take(len(data))
            link.put(data)
    except (ConnectionError, OSError):
        pass
    link.put(None)
    await sender


async def _serve(listen: int, upstream: int, bucket: Bucket | None, chunk: int,
                 delay: float = 0.0, window: int | None = None) -> asyncio.Server:
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
        if delay > 0:
            down = asyncio.create_task(_far_pipe(u_reader, FarLink(c_writer, delay, window),
                                                 chunk, bucket))
            up = asyncio.create_task(_far_pipe(c_reader, FarLink(u_writer, delay, None),
                                               chunk, None))
        else:
            down = asyncio.create_task(_pipe(u_reader, c_writer, chunk, bucket))
            up = asyncio.create_task(_pipe(c_reader, u_writer, chunk, None))
        await down  # the server is done (or gone): close both sides
        up.cancel()
        for w in (u_writer, c_writer):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", listen, reuse_address=True)


async def _main(rate: int, chunk: int, pairs: list[tuple[int, int]], delay: float,
                window: int | None) -> None:
    bucket = Bucket(rate, chunk) if rate > 0 else None
    servers = [await _serve(lp, up, bucket, chunk, delay, window) for lp, up in pairs]
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
    p.add_argument("--rate", type=int, required=True,
                   help="bytes per second, all connections (0: no cap)")
    p.add_argument("--chunk", type=int, default=0, help="bucket size and read size (bytes)")
    p.add_argument("--delay", type=float, default=0.0,
                   help="seconds each byte waits, each way (a round trip is twice this)")
    p.add_argument("--window", type=int, default=0,
                   help="with --delay: the largest congestion window of a connection (bytes)")
    p.add_argument("pairs", nargs="+", help="LISTEN_PORT:UPSTREAM_PORT on 127.0.0.1")
    a = p.parse_args(argv)
    pairs = [(int(x), int(y)) for x, _, y in (s.partition(":") for s in a.pairs)]
    try:
        chunk = a.chunk or (default_chunk(a.rate) if a.rate > 0 else 256 * 1024)
        asyncio.run(_main(a.rate, chunk, pairs, a.delay, a.window or None))
    except OSError as e:  # a port taken between probe and bind: the launcher retries
        print(f"throttle: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
