"""bench 2: bulk transfer in CHUNK-byte pieces.

bulk.py send --port P --bytes N --chunk C   to a sink, which answers with its count
bulk.py recv --port P --bytes N --chunk C   from a source, then EOF
"""

from common import close, connect, main, parser


async def send(port, total, chunk):
    reader, writer = await connect(port)
    data = b"x" * chunk
    left = total
    while left > 0:
        n = min(left, chunk)
        writer.write(data if n == chunk else data[:n])
        await writer.drain()
        left -= n
    writer.write_eof()
    answer = await reader.read()
    if answer.strip() != str(total).encode():
        raise RuntimeError(f"the sink counted {answer!r}, not {total}")
    await close(writer)


async def recv(port, total, chunk):
    reader, writer = await connect(port)
    left = total
    while left > 0:
        n = min(left, chunk)
        await reader.readexactly(n)
        left -= n
    if await reader.read(1):
        raise RuntimeError(f"the source sent more than {total} bytes")
    await close(writer)


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("direction", choices=["send", "recv"])
    a = p.parse_args()
    main((send if a.direction == "send" else recv)(a.port, a.bytes, a.chunk))
