"""bench 1: N round trips of a SIZE-byte message.

pingpong.py --port P --n N --size S   against an echo server (1a)
pingpong.py --local --n N --size S    both ends in this process (1b)
"""

import asyncio

from common import HOST, close, connect, main, parser


async def round_trips(reader, writer, n, size):
    msg = b"p" * size
    back = b""
    for _ in range(n):
        writer.write(msg)
        await writer.drain()
        back = await reader.readexactly(size)
    if n and back != msg:
        raise RuntimeError("the echo differs from the message")


async def client(port, n, size):
    reader, writer = await connect(port)
    await round_trips(reader, writer, n, size)
    await close(writer)


async def local(n, size):
    done = asyncio.get_running_loop().create_future()

    async def echo(reader, writer):
        try:
            for _ in range(n):
                writer.write(await reader.readexactly(size))
                await writer.drain()
            done.set_result(None)
        except Exception as e:
            done.set_exception(e)
        finally:
            writer.close()

    server = await asyncio.start_server(echo, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    await client(port, n, size)
    await done
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--local", action="store_true")
    a = p.parse_args()
    main(local(a.n, a.size) if a.local else client(a.port, a.n, a.size))
