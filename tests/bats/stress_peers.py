#!/usr/bin/env python3
"""stress_peers.py - misbehaving clients of the matching server.

  stress_peers.py storm PORT N      N connections opened and dropped at
                                    once: bare close, close after Hello,
                                    close inside a frame, reset (RST)
  stress_peers.py slow PORT N ORDERS SECONDS
                                    N clients with a tiny receive buffer
                                    that send ORDERS resting orders each
                                    and never read: the server must cut
                                    them off within SECONDS (prints how
                                    many it did)
  stress_peers.py reset PORT N ORDERS
                                    N clients that send Hello + ORDERS
                                    orders in one write and reset the
                                    connection (SO_LINGER 0) at once
  stress_peers.py signals PID SIGNO MS SECONDS
                                    send SIGNO to PID every MS ms for
                                    SECONDS; prints how many were sent

Symbols used are 60000 and up, away from loadgen's --deterministic ones
(0, 1, ...), so these peers never change a loadgen connection's bytes.
"""
import os
import signal
import socket
import struct
import sys
import time

HELLO = struct.pack("<HBBI8s", 16, ord("L"), 0, 1, b"stress")


def new_order(symbol, cl_ord_id, price):
    return struct.pack("<HBBIQqIBBBB", 32, ord("O"), 0, symbol, cl_ord_id,
                       price, 1, ord("B"), ord("L"), ord("G"), 0)


def linger0(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))


def storm(port, n):
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        kind = i % 4
        if kind == 1:
            s.sendall(HELLO)
        elif kind == 2:
            s.sendall(HELLO + new_order(60000, 1, 100)[:13])
        elif kind == 3:
            s.sendall(HELLO + new_order(60000 + i % 7, i + 1, 100))
            linger0(s)
        s.close()
    print("storm: %d connections" % n)


def slow(port, n, orders, seconds):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append([s, HELLO + b"".join(
            new_order(60100 + i, k + 1, 1 + k % 1000)
            for k in range(orders))])
    cut = 0
    deadline = time.time() + seconds
    while socks and time.time() < deadline:
        for entry in list(socks):
            s, pending = entry
            try:
                if pending:
                    entry[1] = pending[s.send(pending[:1 << 20]):]
                else:
                    # Never read: probe for the server's close only.
                    s.send(b"")
                    time.sleep(0.001)
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise ConnectionResetError(err)
                    if s.recv(1, socket.MSG_PEEK) == b"":
                        raise ConnectionResetError(0)
            except BlockingIOError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                cut += 1
                socks.remove(entry)
                s.close()
        time.sleep(0.005)
    print("slow: %d of %d cut off" % (cut, n))


def reset(port, n, orders):
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(HELLO + b"".join(new_order(60200 + i % 50, i * orders + k
                                             + 1, 1 + k % 500)
                                   for k in range(orders)))
        linger0(s)
        s.close()
    print("reset: %d connections" % n)


def signals(pid, signo, ms, seconds):
    sent = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            os.kill(pid, signo)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(ms / 1000.0)
    print("signals: %d sent" % sent)


def main():
    cmd, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
    if cmd == "signals":
        signals(*args)
    else:
        {"storm": storm, "slow": slow, "reset": reset}[cmd](*args)


main()
