"""A TCP relay that adds a fixed network delay, to stand in for a WAN or mesh-VPN link.

The kernel here has no ``netem`` qdisc, so ``tc qdisc ... netem delay`` is not an option;
this does the same job in user space (like toxiproxy's latency toxic): every chunk read
from one side is written to the other ``rtt / 2`` later, in order, in both directions.
Bandwidth is not limited and nothing is dropped. It runs as its own process so that its
CPU is not charged to the process being measured.

    python bench/delay_relay.py --to 127.0.0.1:2222 --rtt-ms 10   # prints the port
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    # Chunks are stamped on arrival and released by one sender in order, so a burst
    # keeps its spacing and nothing overtakes anything else.
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()
    done = False

    async def send() -> None:
        while queue or not done:
            if not queue:
                arrived.clear()
                await arrived.wait()
                continue
            due, chunk = queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            queue.popleft()
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while chunk := await reader.read(65536):
            queue.append((time.monotonic() + delay, chunk))
            arrived.set()
    except ConnectionError:
        pass
    finally:
        done = True
        arrived.set()
        try:
            await sender
        except ConnectionError:
            pass


async def serve(target_host: str, target_port: int, rtt: float, port: int = 0) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w, rtt / 2), _pipe(up_r, client_w, rtt / 2))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--to", required=True, help="HOST:PORT to relay to")
    p.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    args = p.parse_args()
    host, _, port = args.to.rpartition(":")
    try:
        asyncio.run(serve(host, int(port), args.rtt_ms / 1000, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
