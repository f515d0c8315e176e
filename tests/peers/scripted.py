"""A peer that plays a script, for the protocol modules' tests (tests/std_modules.rs): for
each connection in turn, a list of steps; each step reads the request it expects, byte for
byte, then answers with canned bytes a few at a time (so replies arrive split at every
boundary), and may close the connection. Prints its port first (the readiness signal).

    from scripted import serve
    serve([[(b"PING\\r\\n", b"+PONG\\r\\n", False)]])

In an expected request, `{port}` stands for this peer's own port (a `Host` header names it).
"""

import socket
import sys

from peer import listen

TRICKLE = 3


def read_exactly(c, n):
    got = b""
    while len(got) < n:
        chunk = c.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def serve(connections):
    s = listen(timeout=10, backlog=len(connections))
    port = str(s.getsockname()[1]).encode()
    for steps in connections:
        c, _ = s.accept()
        c.settimeout(10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        closed = False
        for expected, reply, close in steps:
            if expected is not None:
                expected = expected.replace(b"{port}", port)
                got = read_exactly(c, len(expected))
                if got != expected:
                    print(f"expected {expected!r}\n     got {got!r}", file=sys.stderr)
                    sys.exit(1)
            for i in range(0, len(reply), TRICKLE):
                c.sendall(reply[i : i + TRICKLE])
            if close:
                c.close()
                closed = True
                break
        if not closed:
            # Wait for the client to close first, so that nothing it has not read is reset.
            try:
                while c.recv(4096):
                    pass
            except OSError:
                pass
            c.close()
    print("served", flush=True)
