"""bench 7: N round trips of a SIZE-byte text message over a WebSocket, with the `websockets`
package's asyncio client (from PyPI; `scripts/test` installs it).

wspingpong.py --port P --n N --size S   against a WebSocket echo server
"""

from common import HOST, main, parser


async def client(port, n, size):
    from websockets.asyncio.client import connect

    msg = "p" * size
    back = ""
    async with connect(f"ws://{HOST}:{port}/") as ws:
        for _ in range(n):
            await ws.send(msg)
            back = await ws.recv()
    if n and back != msg:
        raise RuntimeError("the echo differs from the message")


if __name__ == "__main__":
    a = parser(__doc__).parse_args()
    main(client(a.port, a.n, a.size))
