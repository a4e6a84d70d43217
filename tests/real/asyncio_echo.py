"""asyncio programs for asyncio.sh (stdlib only).

    python3 asyncio_echo.py server PORT
        TCP echo server on 127.0.0.1:PORT; stops on SIGTERM/SIGINT (through
        loop.add_signal_handler), exits 0 and prints what it served.
    python3 asyncio_echo.py client PORT [CONNS] [MSGS]
        CONNS connections (default 50) at once, each sending MSGS messages
        (default 20) of 1 byte .. 256 KiB, one at a time and in pipelined
        groups of 3, verifying every echoed byte, then a half-close that must
        be answered by EOF. Exit 1 on any error.
    python3 asyncio_echo.py subproc
        /bin/cat through pipes with asyncio.create_subprocess_exec: several at
        once with 0 B .. 4 MiB through communicate(), and one line by line.
        Exit 1 on any error.
Each prints one summary line starting with its mode.
"""
import asyncio
import hashlib
import random
import signal
import sys

TIMEOUT = 30


def payload(conn, i, size):
    seed = hashlib.sha256(b"%d/%d" % (conn, i)).digest()
    return random.Random(seed).randbytes(size)


def msg_size(rnd):
    r = rnd.random()
    if r < 0.4:
        return rnd.randint(1, 100)
    if r < 0.8:
        return rnd.randint(101, 16384)
    return rnd.randint(16385, 262144)


# ---- server -------------------------------------------------------------------

async def server_main(port):
    stats = {"conns": 0, "bytes": 0}

    async def handle(reader, writer):
        stats["conns"] += 1
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                stats["bytes"] += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("server: listening on 127.0.0.1:%d" % port, flush=True)
    async with server:
        await stop.wait()
    print("server: stopped; connections=%d echoed_bytes=%d" % (stats["conns"], stats["bytes"]), flush=True)
    return 0


# ---- client -------------------------------------------------------------------

async def one_conn(port, conn, nmsgs, totals, errors):
    rnd = random.Random(conn)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while i < nmsgs:
            group = 3 if i % 4 == 3 else 1  # every fourth step pipelines 3 messages
            msgs = [payload(conn, i + j, msg_size(rnd)) for j in range(min(group, nmsgs - i))]
            for m in msgs:
                writer.write(m)
            await writer.drain()
            for j, m in enumerate(msgs):
                try:
                    got = await reader.readexactly(len(m))
                except asyncio.IncompleteReadError as e:
                    errors.append("conn %d msg %d: EOF after %d of %d bytes" % (conn, i + j, len(e.partial), len(m)))
                    return
                if got != m:
                    first = next(k for k in range(len(m)) if got[k] != m[k])
                    errors.append("conn %d msg %d (%d bytes): first wrong byte at %d" % (conn, i + j, len(m), first))
                    return
                totals["msgs"] += 1
                totals["bytes"] += len(m)
            i += len(msgs)
        writer.write_eof()
        rest = await reader.read()
        if rest:
            errors.append("conn %d: %d unexpected bytes before EOF" % (conn, len(rest)))
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def client_main(port, nconns, nmsgs):
    totals = {"msgs": 0, "bytes": 0}
    errors = []
    tasks = [one_conn(port, c, nmsgs, totals, errors) for c in range(nconns)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
    except asyncio.TimeoutError:
        errors.append("timed out after %d s with %d messages done" % (TIMEOUT, totals["msgs"]))
        results = []
    for r in results:
        if isinstance(r, BaseException):
            errors.append("connection failed: %r" % r)
    print("client: conns=%d msgs=%d bytes=%d errors=%d" % (nconns, totals["msgs"], totals["bytes"], len(errors)))
    for e in errors[:10]:
        print("  error: " + e)
    ok = not errors and totals["msgs"] == nconns * nmsgs
    return 0 if ok else 1


# ---- subprocess ---------------------------------------------------------------

async def cat_once(size, errors):
    data = payload(99, size, size)
    proc = await asyncio.create_subprocess_exec("/bin/cat", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(data)
    if out != data:
        errors.append("cat of %d bytes returned %d bytes%s" % (size, len(out), "" if len(out) != size else " (different)"))
    if proc.returncode != 0:
        errors.append("cat of %d bytes exited %s" % (size, proc.returncode))
    return size


async def cat_lines(n, errors):
    proc = await asyncio.create_subprocess_exec("/bin/cat", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    for i in range(n):
        line = b"line %d %s\n" % (i, b"x" * (i * 37 % 3000))
        proc.stdin.write(line)
        await proc.stdin.drain()
        got = await proc.stdout.readline()
        if got != line:
            errors.append("cat line %d: got %d bytes, want %d" % (i, len(got), len(line)))
            break
    proc.stdin.close()
    rest = await proc.stdout.read()
    rc = await proc.wait()
    if rest or rc != 0:
        errors.append("cat lines: %d bytes after close, exit %s" % (len(rest), rc))
    return n


async def subproc_main():
    errors = []
    sizes = [0, 1, 4096, 65536, 65537, 1 << 20, 4 << 20]
    nlines = 200

    async def run():
        done = await asyncio.gather(*(cat_once(s, errors) for s in sizes), cat_lines(nlines, errors))
        return sum(done[:-1])

    try:
        total = await asyncio.wait_for(run(), TIMEOUT)
    except asyncio.TimeoutError:
        errors.append("timed out after %d s" % TIMEOUT)
        total = 0
    print("subproc: cats=%d bytes=%d lines=%d errors=%d" % (len(sizes) + 1, total, nlines, len(errors)))
    for e in errors[:10]:
        print("  error: " + e)
    return 1 if errors else 0


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "server":
        return asyncio.run(server_main(int(argv[2])))
    if mode == "client":
        nconns = int(argv[3]) if len(argv) > 3 else 50
        nmsgs = int(argv[4]) if len(argv) > 4 else 20
        return asyncio.run(client_main(int(argv[2]), nconns, nmsgs))
    if mode == "subproc":
        return asyncio.run(subproc_main())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
