"""bench 5: scenarios/greeting.rhai in asyncio: a server thanks each of two clients; the clients
print what they got."""

import asyncio

from common import HOST, GREETING, main


async def greeting():
    served = 0
    done = asyncio.Event()

    async def serve(reader, writer):
        nonlocal served
        print(f"Got connection from {HOST}:{writer.get_extra_info('peername')[1]}")
        writer.write(GREETING)
        await writer.drain()
        writer.close()
        served += 1
        if served == 2:
            done.set()

    server = await asyncio.start_server(serve, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    for _ in range(2):
        reader, writer = await asyncio.open_connection(HOST, port)
        msg = (await reader.read()).decode()
        print(msg)
        assert msg == GREETING.decode()
        writer.close()
    await done.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    main(greeting())
