"""bench 6: N trivial scenarios (bench/scenarios/trivial.rhai: one line over loopback) in one
process, JOBS at a time, as `sockscript --test -j JOBS` runs N copies of it."""

import asyncio

from common import HOST, main, parser


async def trivial():
    accepted = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(
        lambda r, w: accepted.set_result((r, w)), HOST, 0
    )
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection(HOST, port)
    reader, writer = await accepted
    client.write(b"hi\n")
    line = await reader.readline()
    assert line == b"hi\n", line
    client.close()
    writer.close()
    server.close()
    await server.wait_closed()


async def run_all(n, jobs):
    gate = asyncio.Semaphore(jobs)

    async def one():
        async with gate:
            await trivial()

    await asyncio.gather(*(one() for _ in range(n)))


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    main(run_all(a.n, a.jobs))
