"""memcached text-protocol set/get checker (stdlib only), used by memcached.sh.

    python3 memcached_client.py PORT [NKEYS]

Sets NKEYS keys (default 2000) with pseudo-random binary values of 1..100000
bytes (log-uniform, both ends included) and flags, some pipelined, then gets
them back one by one and in multi-gets of 50, verifying every byte and the
flags. Prints one summary line; exit status 0 only if everything matched.
"""
import math
import random
import socket
import sys


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(1 << 16)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def value_for(i, rnd):
    if i == 0:
        size = 1
    elif i == 1:
        size = 100000
    else:
        size = int(math.exp(rnd.uniform(0, math.log(100000))))
        size = min(max(size, 1), 100000)
    return rnd.randbytes(size), rnd.randrange(1 << 16)


def main():
    port = int(sys.argv[1])
    nkeys = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rnd = random.Random(20240607)
    items = {}
    for i in range(nkeys):
        items["rs:%d:%d" % (i, rnd.randrange(1 << 30))] = value_for(i, rnd)
    keys = list(items)
    c = Conn(port)
    errors = []

    # sets: in groups of 10 sent together, then 10 replies read
    for g in range(0, nkeys, 10):
        group = keys[g:g + 10]
        c.send(b"".join(b"set %s %d 0 %d\r\n%s\r\n" % (k.encode(), items[k][1], len(items[k][0]), items[k][0])
                        for k in group))
        for k in group:
            r = c.line()
            if r != b"STORED":
                errors.append("set %s: %r" % (k, r[:80]))

    def check_value(k, hdr, data):
        parts = hdr.split()
        if len(parts) < 4 or parts[0] != b"VALUE":
            errors.append("get %s: bad header %r" % (k, hdr[:80]))
            return
        if parts[1].decode() != k:
            errors.append("get %s: header names %s" % (k, parts[1].decode()))
            return
        want, flags = items[k]
        if int(parts[2]) != flags:
            errors.append("get %s: flags %s, want %d" % (k, parts[2].decode(), flags))
        if data != want:
            first = next((j for j in range(min(len(data), len(want))) if data[j] != want[j]),
                         min(len(data), len(want)))
            errors.append("get %s: %d bytes, want %d; first difference at byte %d" % (k, len(data), len(want), first))

    def read_value(k):
        hdr = c.line()
        if not hdr.startswith(b"VALUE "):
            errors.append("get %s: %r" % (k, hdr[:80]))
            return hdr == b"END"
        n = int(hdr.split()[3])
        data = c.exact(n)
        if c.exact(2) != b"\r\n":
            errors.append("get %s: value not followed by CRLF" % k)
        check_value(k, hdr, data)
        return False

    # single gets
    nbytes = 0
    for k in keys:
        c.send(b"get %s\r\n" % k.encode())
        ended = read_value(k)
        if not ended:
            end = c.line()
            if end != b"END":
                errors.append("get %s: %r instead of END" % (k, end[:80]))
        nbytes += len(items[k][0])
        if len(errors) > 20:
            break

    # multi-gets of 50 keys
    for g in range(0, nkeys, 50):
        group = keys[g:g + 50]
        c.send(b"get " + b" ".join(k.encode() for k in group) + b"\r\n")
        for k in group:
            if read_value(k):
                errors.append("multi-get: END before %s" % k)
                break
        else:
            end = c.line()
            if end != b"END":
                errors.append("multi-get: %r instead of END" % end[:80])
        if len(errors) > 20:
            break

    c.send(b"quit\r\n")
    total = sum(len(v) for v, _ in items.values())
    print("memcached_client: keys=%d value_bytes=%d sets=%d gets=%d multigets=%d errors=%d"
          % (nkeys, total, nkeys, nkeys, (nkeys + 49) // 50, len(errors)))
    for e in errors[:10]:
        print("  error: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
