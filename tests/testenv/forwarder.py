"""Plain TCP on loopback -> the isolated dockerd's unix socket.

Why this exists: one dockerd has a single TLS configuration that applies to
every tcp:// listener, so it cannot serve both plain TCP and mutual TLS. dockerd
therefore listens on its unix socket and on the mTLS port, and this forwarder
provides the plain tcp://127.0.0.1:P endpoint. It is byte-transparent, so HTTP
upgrades (attach, exec) work as they do against dockerd itself.

Run as a standalone script (no package imports) so it can outlive the process
that started it when the environment is brought up from the CLI:

    python forwarder.py UNIX_SOCKET PORT_FILE

It binds an ephemeral port itself (no race with other runs) and writes the
number to PORT_FILE once it accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        # Propagate half-close: docker clients shut down their write side
        # after sending stdin while still reading the output.
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _handle(
    sock_path: str, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
) -> None:
    try:
        u_reader, u_writer = await asyncio.open_unix_connection(sock_path)
    except OSError:
        c_writer.close()
        return
    try:
        await asyncio.gather(_pipe(c_reader, u_writer), _pipe(u_reader, c_writer))
    finally:
        for w in (u_writer, c_writer):
            with contextlib.suppress(Exception):
                w.close()


async def _main(sock_path: str, port_file: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: _handle(sock_path, r, w), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(port))
    os.replace(tmp, port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: forwarder.py UNIX_SOCKET PORT_FILE")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1], sys.argv[2]))
