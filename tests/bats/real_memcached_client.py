#!/usr/bin/env python3
"""real_memcached_client.py - verify every value memcached hands back.

Usage: real_memcached_client.py PORT CONNECTIONS OPS SEED

CONNECTIONS threads, each with its own TCP connection (memcached -t 4 hands
them to its worker threads), each doing OPS rounds of: set a batch of keys
to random values (1 byte to 200 KB, binary), then read the batch back with
one multi-key `get` and compare every byte; some rounds also use noreply
sets pipelined ahead of a get, deletes, and incr. Prints one summary line;
exits 1 on the first mismatch, with the key and what differed.
"""
import random
import socket
import sys
import threading

failures = []
counts = [0] * 4


def recv_line(sock, buf):
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by memcached")
        buf += chunk
    line, _, rest = buf.partition(b"\r\n")
    return line, rest


def recv_exact(sock, buf, n):
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise EOFError("connection closed by memcached")
        buf += chunk
    return buf[:n], buf[n:]


def read_values(sock, buf):
    """Parse VALUE blocks up to END; return ({key: bytes}, leftover)."""
    got = {}
    while True:
        line, buf = recv_line(sock, buf)
        if line == b"END":
            return got, buf
        parts = line.split()
        if parts[0] != b"VALUE":
            raise ValueError("unexpected line %r" % line[:80])
        size = int(parts[3])
        data, buf = recv_exact(sock, buf, size + 2)
        if data[-2:] != b"\r\n":
            raise ValueError("value of %r not followed by CRLF" % parts[1])
        got[parts[1].decode()] = data[:-2]


def worker(idx, port, ops, seed):
    rnd = random.Random(seed * 1000003 + idx)
    sock = socket.create_connection(("127.0.0.1", port))
    buf = b""
    try:
        for rnd_no in range(ops):
            batch = {}
            for k in range(rnd.randint(1, 8)):
                key = "c%d-r%d-k%d" % (idx, rnd_no, k)
                size = rnd.choice([1, 7, 100, 1400, 4096, 65536,
                                   rnd.randint(1, 200000)])
                batch[key] = rnd.randbytes(size)
            noreply = rnd.random() < 0.3
            out = []
            for key, val in batch.items():
                out.append(b"set %s 0 0 %d%s\r\n%s\r\n" % (
                    key.encode(), len(val),
                    b" noreply" if noreply else b"", val))
            sock.sendall(b"".join(out))
            if not noreply:
                for key in batch:
                    line, buf = recv_line(sock, buf)
                    if line != b"STORED":
                        raise ValueError("set %s: %r" % (key, line))
            sock.sendall(b"get " + " ".join(batch).encode() + b"\r\n")
            got, buf = read_values(sock, buf)
            for key, val in batch.items():
                if got.get(key) != val:
                    raise ValueError("get %s: %s" % (key, "missing"
                                     if key not in got else
                                     "%d bytes differ from the %d set" %
                                     (len(got[key]), len(val))))
            counts[0] += len(batch)
            if rnd.random() < 0.2:
                key = next(iter(batch))
                sock.sendall(b"delete %s\r\nget %s\r\n" %
                             (key.encode(), key.encode()))
                line, buf = recv_line(sock, buf)
                got, buf = read_values(sock, buf)
                if line != b"DELETED" or got:
                    raise ValueError("delete %s: %r %r" % (key, line, got))
                counts[1] += 1
            if rnd.random() < 0.2:
                key = b"n%d" % idx
                sock.sendall(b"set %s 0 0 1\r\n0\r\n" % key +
                             b"incr %s 5\r\n" % key * 10)
                line, buf = recv_line(sock, buf)
                for i in range(10):
                    line, buf = recv_line(sock, buf)
                if line != b"50":
                    raise ValueError("incr %s: %r" % (key, line))
                counts[2] += 1
    except (ValueError, EOFError, OSError) as e:
        failures.append("connection %d: %s" % (idx, e))
    finally:
        sock.close()


def main():
    port, conns, ops, seed = (int(a) for a in sys.argv[1:5])
    threads = [threading.Thread(target=worker, args=(i, port, ops, seed))
               for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("values verified %d, deletes %d, incr rounds %d, failures %d" %
          (counts[0], counts[1], counts[2], len(failures)))
    for f in failures[:10]:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


main()
