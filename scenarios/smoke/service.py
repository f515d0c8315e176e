#!/usr/bin/env python3
"""A tiny line-based key-value service for the smoke scenarios in this folder to check.

    python3 scenarios/smoke/service.py [--port N] [--broken]

Commands, one per line: PING -> +PONG, SET key value -> +OK, GET key -> $value (or $-1 when
unset), QUIT -> +BYE and close. Anything else -> -ERR unknown command. With --broken it answers
PING with -ERR, so a pipeline can see the smoke suite go red. Prints its port once listening.
"""
import argparse
import socket
import threading


def serve(conn, store, broken):
    with conn:
        reader = conn.makefile("rb")
        for raw in reader:
            parts = raw.decode("utf-8", "replace").rstrip("\r\n").split(" ", 2)
            cmd = parts[0].upper()
            if cmd == "PING":
                reply = "-ERR broken" if broken else "+PONG"
            elif cmd == "SET" and len(parts) == 3:
                store[parts[1]] = parts[2]
                reply = "+OK"
            elif cmd == "GET" and len(parts) == 2:
                reply = "$" + store.get(parts[1], "-1")
            elif cmd == "QUIT":
                conn.sendall(b"+BYE\r\n")
                return
            else:
                reply = "-ERR unknown command"
            conn.sendall(reply.encode() + b"\r\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--broken", action="store_true")
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    store = {}
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, store, args.broken), daemon=True).start()


if __name__ == "__main__":
    main()
