"""bench 4: fan-out against a greeting server.

fanout.py tasks --port P --n N   N tasks, each connect + greeting + close, gathered (4a)
fanout.py hold --port P --n N    N connections, each greeted, all held open at once (4b)
"""

import asyncio

from common import close, greet, main, parser


async def one(port):
    _, writer = await greet(port)
    await close(writer)


async def tasks(port, n):
    await asyncio.gather(*(asyncio.create_task(one(port)) for _ in range(n)))


async def hold(port, n):
    held = []
    for _ in range(n):
        held.append(await greet(port))
    if len(held) != n:
        raise RuntimeError("lost a connection")
    for _, writer in held:
        writer.close()


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("mode", choices=["tasks", "hold"])
    a = p.parse_args()
    main((tasks if a.mode == "tasks" else hold)(a.port, a.n))
