"""The Python peers of sockscript's integration tests: an independent implementation of the
other end of a conversation (DESIGN.md section 4), on loopback, port 0.

The tests' Python snippets import it (`harness::python` puts this directory on PYTHONPATH):

    from peer import accept_one
    c = accept_one()          # prints the port: the test reads it as the readiness signal
    c.sendall(b"hello")

A peer that binds prints its port on stdout before anything else, and the test reads that line
before going on; no sleeps where that signal exists.
"""

import socket
import ssl
import sys


def ready(sock):
    """Print the port `sock` is bound to: the readiness signal every test waits for."""
    print(sock.getsockname()[1], flush=True)


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host="127.0.0.1", backlog=1, timeout=10, reuse=False):
    """A TCP socket listening on `host`, port 0; prints its port. `timeout` bounds `accept`
    (None: no bound); `reuse` sets SO_REUSEADDR."""
    s = socket.socket(_family(host), socket.SOCK_STREAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if timeout is not None:
        s.settimeout(timeout)
    s.bind((host, 0))
    s.listen(backlog)
    ready(s)
    return s


# Listeners kept open until the process exits, as a script's own `s` would be.
_listeners = []


def accept_one(host="127.0.0.1", timeout=10):
    """listen(), then accept one client: the connection, under the same timeout. The listener
    stays open until the process exits (a second client waits in its backlog, not refused)."""
    s = listen(host, timeout=timeout)
    _listeners.append(s)
    c, _ = s.accept()
    c.settimeout(timeout)
    return c


def udp(host="127.0.0.1", timeout=10):
    """A datagram socket bound to `host`, port 0; prints its port."""
    u = socket.socket(_family(host), socket.SOCK_DGRAM)
    u.settimeout(timeout)
    u.bind((host, 0))
    ready(u)
    return u


def connect(port, host="127.0.0.1", timeout=10, announce=False):
    """A TCP connection to `host:port`; with `announce`, prints its own port (the test compares
    it with what the server saw)."""
    c = socket.socket(_family(host), socket.SOCK_STREAM)
    c.settimeout(timeout)
    c.connect((host, port))
    if announce:
        ready(c)
    return c


def read_to_end(c, size=4096):
    """Everything `c` receives until the peer closes."""
    data = b""
    while True:
        chunk = c.recv(size)
        if not chunk:
            return data
        data += chunk


def echo(c, size=65536):
    """Send back everything `c` receives, as it arrives, until the peer closes; the bytes
    echoed."""
    total = 0
    while True:
        data = c.recv(size)
        if not data:
            return total
        total += len(data)
        c.sendall(data)


def tls_server_context(cert, key, alpn=None):
    """A server-side TLS context with this certificate chain and key (PEM files)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def hold():
    """Wait for EOF on stdin: the test closes it when it is done with this peer."""
    sys.stdin.read()


def cpu_seconds(pid):
    """The CPU time (user + system) process `pid` has used so far, in seconds, from /proc."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
