"""Shared pieces of the Python asyncio baselines of bench/run (standard library only)."""

import argparse
import asyncio
import socket
import sys

# What the greeting server says; the same text as scenarios/greeting.rhai.
GREETING = b"Thank you for connecting"
HOST = "127.0.0.1"


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, help="the server's port on 127.0.0.1")
    p.add_argument("--n", type=int, help="how many round trips / connections / tasks")
    p.add_argument("--size", type=int, default=16, help="message size in bytes")
    p.add_argument("--bytes", type=int, help="bytes to transfer")
    p.add_argument("--chunk", type=int, default=65536, help="bytes per write / read")
    return p


async def connect(port):
    # asyncio sets TCP_NODELAY on its TCP transports, as sockscript does.
    return await asyncio.open_connection(HOST, port)


async def greet(port):
    reader, writer = await connect(port)
    got = await reader.readexactly(len(GREETING))
    if got != GREETING:
        raise RuntimeError(f"unexpected greeting {got!r}")
    return reader, writer


async def close(writer):
    writer.close()
    await writer.wait_closed()


def main(coro):
    try:
        asyncio.run(coro)
    except Exception as e:  # report like the other programs: one line, exit 1
        print(f"{sys.argv[0]}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
