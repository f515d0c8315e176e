"""bench 3: N sequential connections to a greeting server: connect, read the greeting, close."""

from common import close, greet, main, parser


async def connrate(port, n):
    for _ in range(n):
        _, writer = await greet(port)
        await close(writer)


if __name__ == "__main__":
    a = parser(__doc__).parse_args()
    main(connrate(a.port, a.n))
