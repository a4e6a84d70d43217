"""`ringshim stat`: reading counter segments, rates, cleanup of stale
segments, corrupt and truncated segments, usage, and one live process.

Most tests write synthetic segments (layout-correct, built here from the
format in docs/observability.md, not from the library's code) into a
temporary directory and point the command at it with RINGSHIM_SHM_DIR.
The live test preloads the real library (skipped when it is not built)."""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from rstest_util import (PYTHON, REPO, RINGSHIM, clean_env, python_for_others, ringshim,
                         world_executable)
from ringshim_lib import procs, shmstat

HEADER = struct.Struct("<8sIIiIIIQIIIII64s16s")

CALLS = ["read", "write", "readv", "writev", "pread", "pwrite", "preadv", "pwritev",
         "recv", "recvfrom", "recvmsg", "recvmmsg", "send", "sendto", "sendmsg",
         "sendmmsg", "sendfile", "accept", "connect", "close", "shutdown", "epoll_wait",
         "epoll_ctl", "poll", "select"]
PT = ["fd_kind", "fds_filter", "fallback", "reentry", "flags", "unsupported", "ring_cap",
      "shared"]
OTHER = ["served_ring", "served_stash", "served_acceptq", "served_writebehind", "enter",
         "sqes", "cqes", "rings_created", "rings_failed", "sq_full_flushes", "cancels",
         "eintr", "restarts", "timeouts", "sigpipe_raised", "fd_classified",
         "enobufs_rearms", "deferred_errors", "wb_bytes", "stash_bytes_in",
         "accept_queued", "sqe_per_enter_1", "sqe_per_enter_2_3", "sqe_per_enter_4_7",
         "sqe_per_enter_8_15", "sqe_per_enter_16_31", "sqe_per_enter_32_up"]
COUNTERS = ["call_" + c for c in CALLS] + ["pt_" + p for p in PT] + OTHER
GAUGES = ["wb_pending", "wb_peak", "stash_bytes", "acceptq_depth", "fds_managed",
          "rings_live"]


def _align(n, a=64):
    return (n + a - 1) // a * a


def build_segment(pid, start_time, retired=None, slots=None, gauges=None, prog="prog",
                  mode="strict", counters=COUNTERS, gauge_names=GAUGES, nslots=128,
                  shuffled=False, junk_in_free_slots=True, magic=b"RINGSHM1"):
    """Bytes of a segment. RETIRED: {counter: value}; SLOTS: {slot index:
    {counter: value}} for live threads; SHUFFLED puts the parts in another
    order than the library does (the header's offsets must be followed)."""
    nc, ng = len(counters), len(gauge_names)
    block = _align(8 * nc)
    names = b"".join(n.encode() + b"\0" for n in list(counters) + list(gauge_names))
    sizes = {"names": len(names), "gauges": 8 * ng, "used": 8 * (nslots // 64),
             "retired": 8 * nc, "slots": nslots * block}
    order = ["names", "gauges", "used", "retired", "slots"]
    if shuffled:
        order.reverse()
    off = _align(HEADER.size)
    offs = {}
    for part in order:
        offs[part] = off
        off = _align(off + sizes[part])
    buf = bytearray(off)
    HEADER.pack_into(buf, 0, magic, HEADER.size, nslots, pid, nc, ng, block, start_time,
                     offs["names"], offs["gauges"], offs["used"], offs["retired"],
                     offs["slots"], prog.encode(), mode.encode())
    buf[offs["names"]:offs["names"] + len(names)] = names
    for i, g in enumerate(gauge_names):
        struct.pack_into("<q", buf, offs["gauges"] + 8 * i, (gauges or {}).get(g, 0))
    for i, c in enumerate(counters):
        struct.pack_into("<Q", buf, offs["retired"] + 8 * i, (retired or {}).get(c, 0))
    slots = slots or {}
    used = [0] * (nslots // 64)
    for s in range(nslots):
        vals = slots.get(s)
        if vals is not None:
            used[s // 64] |= 1 << (s % 64)
        elif not junk_in_free_slots:
            continue
        for i, c in enumerate(counters):
            v = vals.get(c, 0) if vals is not None else 7777777  # free slots: ignored
            struct.pack_into("<Q", buf, offs["slots"] + s * block + 8 * i, v)
    for w, word in enumerate(used):
        struct.pack_into("<Q", buf, offs["used"] + 8 * w, word)
    return bytes(buf)


def own_start_time(pid=None):
    return procs.read_stat(pid or os.getpid()).start


def free_pid():
    """A pid no process has right now."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            top = int(f.read())
    except (OSError, ValueError):
        top = 32768
    for pid in range(top - 1, 300, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise unittest.SkipTest("no free pid")


class ShmDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="rs-stat-")
        self.dir = self.tmp.name
        self.addCleanup(self.tmp.cleanup)

    def put(self, pid, data):
        path = os.path.join(self.dir, "ringshim.%d" % pid)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def stat(self, *args, **kw):
        return ringshim(["stat"] + list(args),
                        env=clean_env(RINGSHIM_SHM_DIR=self.dir), **kw)

    def assertOneLineError(self, r, *needles):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)


class ParseTest(ShmDirTest):
    def sample(self, **kw):
        return build_segment(
            os.getpid(), own_start_time(), prog="echo-srv", mode="batch",
            retired={"call_read": 100, "served_ring": 90, "pt_fd_kind": 10, "enter": 40},
            slots={0: {"call_read": 5, "call_send": 7, "served_ring": 12, "enter": 6,
                       "sqes": 30, "sqe_per_enter_4_7": 6},
                   70: {"call_recv": 3, "served_stash": 3, "pt_flags": 0}},
            gauges={"wb_pending": 4096, "rings_live": 2, "stash_bytes": -1}, **kw)

    def test_totals_are_retired_plus_live_slots(self):
        for shuffled in (False, True):
            seg = shmstat.parse_segment(self.sample(shuffled=shuffled), path="x",
                                        expect_pid=os.getpid())
            c = seg.counters
            self.assertEqual(list(c), COUNTERS)
            self.assertEqual((c["call_read"], c["call_send"], c["call_recv"]), (105, 7, 3))
            self.assertEqual((c["served_ring"], c["served_stash"], c["enter"], c["sqes"]),
                             (102, 3, 46, 30))
            self.assertEqual(c["call_write"], 0)  # free slots' junk is not counted
            self.assertEqual(seg.live_threads, 2)
            self.assertEqual(seg.gauges, {"wb_pending": 4096, "wb_peak": 0, "stash_bytes": -1,
                                          "acceptq_depth": 0, "fds_managed": 0,
                                          "rings_live": 2})
            self.assertEqual((seg.pid, seg.prog, seg.mode), (os.getpid(), "echo-srv", "batch"))

    def test_summary_and_derived(self):
        seg = shmstat.parse_segment(self.sample())
        s = shmstat.summary(seg.counters)
        self.assertEqual((s["calls"], s["served"], s["passthrough"], s["enters"]),
                         (115, 105, 10, 46))
        self.assertAlmostEqual(s["served_share"], 105 / 115)
        self.assertAlmostEqual(s["enters_per_call"], 46 / 115)
        self.assertAlmostEqual(s["sqes_per_enter"], 30 / 46)
        empty = shmstat.summary({n: 0 for n in COUNTERS})
        self.assertIsNone(empty["served_share"])
        self.assertIsNone(empty["sqes_per_enter"])

    def test_unknown_counter_names_are_shown(self):
        data = build_segment(os.getpid(), own_start_time(), retired={"zz_new": 5},
                             counters=COUNTERS + ["zz_new"])
        seg = shmstat.parse_segment(data)
        self.assertEqual(seg.counters["zz_new"], 5)
        groups = dict(shmstat.grouped(seg.counters))
        self.assertIn(("zz_new", 5), groups["Ring activity"])

    def test_stat_pid_text(self):
        self.put(os.getpid(), self.sample())
        r = self.stat(str(os.getpid()))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        out = r.stdout
        self.assertTrue(out.startswith("PID %d (echo-srv), mode batch, up " % os.getpid()), out)
        self.assertIn("2 threads counting", out)
        self.assertIn("calls 115   served 105   passthrough 10   enters 46", out)
        for title in ("Calls by type", "How served", "Passthrough reasons",
                      "Ring activity", "SQEs per io_uring_enter", "Gauges", "Derived"):
            self.assertIn("\n" + title, out)
        for name in CALLS + PT + GAUGES + ["writebehind", "acceptq", "rings_created",
                                             "2-3", "32+"]:
            self.assertRegex(out, r"(?m)(^|\s)%s\s+-?\d+" % re.escape(name), name)
        self.assertRegex(out, r"served share\s+91\.3%")
        self.assertRegex(out, r"enters per call\s+0\.40")
        self.assertRegex(out, r"SQEs per enter\s+0\.65")

    def test_stat_pid_json(self):
        self.put(os.getpid(), self.sample())
        r = self.stat(str(os.getpid()), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        obj = json.loads(r.stdout)
        self.assertEqual((obj["pid"], obj["prog"], obj["mode"], obj["alive"],
                          obj["live_threads"]), (os.getpid(), "echo-srv", "batch", True, 2))
        self.assertEqual(obj["counters"]["calls"], 115)
        self.assertEqual(obj["counters"]["passthrough"], 10)
        self.assertEqual(obj["counters"]["call_read"], 105)
        self.assertEqual(len(obj["counters"]), len(COUNTERS) + 2)
        self.assertEqual(obj["gauges"]["wb_pending"], 4096)
        self.assertEqual(obj["derived"]["served"], 105)
        self.assertAlmostEqual(obj["derived"]["served_share"], 0.913, places=3)
        self.assertGreaterEqual(obj["uptime_s"], 0)


class RatesTest(unittest.TestCase):
    def seg(self, t, **vals):
        c = {n: 0 for n in COUNTERS}
        c.update(vals)
        return shmstat.Segment(path="", pid=1, start_time=1, prog="p", mode="strict",
                               counters=c, gauges={}, live_threads=1, read_at=t)

    def test_rates_from_two_samples(self):
        a = self.seg(10.0, call_read=100, served_ring=100, enter=50, sqes=50)
        b = self.seg(12.0, call_read=300, served_ring=280, pt_flags=20, enter=90, sqes=130)
        elapsed, r = shmstat.rates(a, b)
        self.assertAlmostEqual(elapsed, 2.0)
        self.assertEqual((r["call_read"], r["served_ring"], r["pt_flags"], r["enter"]),
                         (100.0, 90.0, 10.0, 20.0))
        s = shmstat.summary(r)
        self.assertAlmostEqual(s["served_share"], 0.9)
        self.assertAlmostEqual(s["sqes_per_enter"], 2.0)
        self.assertAlmostEqual(s["enters_per_call"], 0.2)

    def test_counter_going_down_counts_as_zero(self):
        # A thread exiting between the two reads of one sample can be
        # counted twice (retired and its slot): the next sample is lower.
        a = self.seg(1.0, call_read=500)
        b = self.seg(2.0, call_read=450)
        self.assertEqual(shmstat.rates(a, b)[1]["call_read"], 0.0)

    def test_rates_text_shows_nonzero_only(self):
        a = self.seg(1.0, call_recv=10)
        b = self.seg(1.5, call_recv=60, served_ring=50, enter=50, sqes=50)
        elapsed, r = shmstat.rates(a, b)
        text = shmstat.rates_text(b, elapsed, r)
        self.assertIn("calls/s 100", text)
        self.assertIn("recv 100", text)
        self.assertNotIn("send", text)


class ListingTest(ShmDirTest):
    def test_lists_live_and_removes_stale(self):
        me, parent, gone = os.getpid(), os.getppid(), free_pid()
        self.put(me, build_segment(me, own_start_time(), prog="alive-one",
                                   retired={"call_read": 7, "served_ring": 6,
                                            "pt_fd_kind": 1, "enter": 5}))
        # The parent is alive but started at another time: a reused pid.
        p_reused = self.put(parent, build_segment(parent, own_start_time(parent) + 12345))
        p_gone = self.put(gone, build_segment(gone, 1000))
        # Not segments: left alone.
        other = os.path.join(self.dir, "ringshim.12x")
        open(other, "w").close()
        r = self.stat()
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["PID", "PROG", "MODE", "UPTIME", "CALLS",
                                            "SERVED", "PASSTHROUGH", "ENTERS"])
        row = lines[1].split()
        self.assertEqual(row[:3], [str(me), "alive-one", "strict"])
        self.assertRegex(row[3], r"^\d+:\d\d:\d\d$")
        self.assertEqual(row[4:], ["7", "6", "1", "5"])
        self.assertEqual(lines[2], "removed 2 stale segments (process gone, or its pid reused)")
        self.assertEqual(len(lines), 3)
        self.assertFalse(os.path.exists(p_reused))
        self.assertFalse(os.path.exists(p_gone))
        self.assertTrue(os.path.exists(other))
        # Nothing stale any more: no removal line.
        r = self.stat()
        self.assertEqual(len(r.stdout.splitlines()), 2, r.stdout)

    def test_listing_json_and_empty(self):
        r = self.stat()
        self.assertEqual(r.stdout.strip(), "no processes are running with the shim")
        gone = free_pid()
        self.put(gone, build_segment(gone, 1))
        self.put(os.getpid(), build_segment(os.getpid(), own_start_time(),
                                            retired={"call_send": 3}))
        obj = json.loads(self.stat("--json").stdout)
        self.assertEqual(obj["removed"], 1)
        self.assertEqual([(p["pid"], p["calls"]) for p in obj["processes"]],
                         [(os.getpid(), 3)])

    def test_corrupt_segment_of_live_process_is_listed_not_removed(self):
        path = self.put(os.getpid(), b"RINGSHM1" + b"\x01" * 200)
        r = self.stat()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%d (unusable segment: corrupt:" % os.getpid(), r.stdout)
        self.assertTrue(os.path.exists(path))

    def test_corrupt_segment_of_dead_process_is_removed(self):
        gone = free_pid()
        path = self.put(gone, b"garbage")
        r = self.stat()
        self.assertIn("removed 1 stale segment (", r.stdout)
        self.assertFalse(os.path.exists(path))

    def test_unreadable_segment(self):
        me = os.getpid()
        path = self.put(me, build_segment(me, own_start_time()))
        if os.geteuid() == 0:
            # Root reads everything: read as nobody instead.
            py = python_for_others()
            if not py or not world_executable(RINGSHIM):
                self.skipTest("no Python interpreter or checkout that nobody may run")
            os.chmod(self.dir, 0o755)

            def as_nobody():
                os.setgid(65534)
                os.setuid(65534)
            r = subprocess.run([py, RINGSHIM, "stat"], env=clean_env(RINGSHIM_SHM_DIR=self.dir),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60, preexec_fn=as_nobody, cwd="/")
            owner = 0
            r2 = subprocess.run([py, RINGSHIM, "stat", str(me)],
                                env=clean_env(RINGSHIM_SHM_DIR=self.dir),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=60, preexec_fn=as_nobody, cwd="/")
        else:
            os.chmod(path, 0)
            owner = os.getuid()
            r = self.stat()
            r2 = self.stat(str(me))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.stdout.strip(), "%d (not readable: owned by uid %d)" % (me, owner))
        self.assertTrue(os.path.exists(path))
        self.assertOneLineError(r2, "not readable: owned by uid %d" % owner)


class BadSegmentTest(ShmDirTest):
    def check(self, data, *needles, pid=None):
        pid = pid or os.getpid()
        self.put(pid, data)
        r = self.stat(str(pid))
        self.assertOneLineError(r, "ringshim.%d" % pid, *needles)
        r = self.stat(str(pid), "--json")
        self.assertOneLineError(r, *needles)
        self.assertEqual(r.stdout, "")

    def good(self):
        return bytearray(build_segment(os.getpid(), own_start_time()))

    def test_bad_magic(self):
        d = self.good()
        d[0:8] = b"NOTASEGM"
        self.check(d, "bad magic")

    def test_truncated_header(self):
        self.check(self.good()[:100], "truncated: 100 bytes, shorter than the 140-byte header")

    def test_truncated_body(self):
        d = self.good()
        self.check(d[:4096], "truncated: 4096 bytes, the header describes %d" % len(d))

    def test_empty_and_unfilled(self):
        self.check(b"", "empty")
        self.check(bytes(600), "not filled in yet")

    def test_bad_sizes_and_offsets(self):
        d = self.good()
        struct.pack_into("<I", d, 12, 100)       # nslots not a multiple of 64
        self.check(d, "corrupt: 100 thread slots")
        d = self.good()
        struct.pack_into("<I", d, 20, 0)          # no counters
        self.check(d, "corrupt: 0 counters")
        d = self.good()
        struct.pack_into("<I", d, 28, 8)          # block smaller than the counters
        self.check(d, "corrupt: block_size 8")
        d = self.good()
        struct.pack_into("<I", d, 44, 16)         # gauges inside the header
        self.check(d, "corrupt: the gauges offset 16 lies inside the header")
        d = self.good()
        struct.pack_into("<I", d, 56, 0xFFFFFF00)  # slots past the end
        self.check(d, "truncated:")
        d = self.good()
        struct.pack_into("<I", d, 8, 12)          # header_size too small
        self.check(d, "corrupt: header_size 12")

    def test_bad_names(self):
        d = self.good()
        names_off = struct.unpack_from("<I", d, 40)[0]
        d[names_off:names_off + 4] = b"a b\x01"
        self.check(d, "corrupt: counter name 1")
        d = self.good()
        d[names_off:names_off + 9] = b"call_recv"  # call_read becomes a second call_recv
        self.check(d, "corrupt: duplicate counter names")

    def test_pid_mismatch(self):
        d = self.good()
        struct.pack_into("<i", d, 16, 1)
        self.check(d, "corrupt: the header names PID 1")

    def test_not_a_regular_file(self):
        os.mkfifo(os.path.join(self.dir, "ringshim.%d" % os.getpid()))
        r = self.stat(str(os.getpid()), timeout=20)
        self.assertOneLineError(r, "not a regular file")


class UsageTest(ShmDirTest):
    def test_no_segment(self):
        me = os.getpid()
        r = self.stat(str(me))
        self.assertOneLineError(r)
        self.assertEqual(r.stderr, "ringshim: no ringshim segment for PID %d: not running "
                                   "with the shim, or started before it\n" % me)
        gone = free_pid()
        r = self.stat(str(gone), "--watch", "1")
        self.assertOneLineError(r, "no ringshim segment for PID %d: no such process" % gone)

    def test_bad_usage(self):
        for args in (["--watch", "1"], ["abc"], ["1", "2"], ["1", "--watch", "0"],
                     ["1", "--watch"], ["1", "--watch", "soon"], ["--bogus"], ["-5"]):
            r = self.stat(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("Try 'ringshim stat --help'", r.stderr)
            self.assertNotIn("Traceback", r.stderr)

    def test_help(self):
        r = self.stat("--help")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("usage: ringshim stat"), r.stdout)
        for word in ("--watch", "--json", "not readable: owned by uid N", "RINGSHIM_SHM_DIR",
                     "served share"):
            self.assertIn(word, r.stdout)
        top = ringshim(["--help"])
        self.assertIn("ringshim stat [PID [--watch SECONDS]] [--json]", top.stdout)
        self.assertIn("\n  stat  ", top.stdout)
        self.assertIn("RINGSHIM_SHM_DIR", top.stdout)

    def test_man_page_has_stat(self):
        with open(os.path.join(REPO, "docs", "ringshim.1")) as f:
            man = f.read()
        self.assertIn(".B ringshim stat", man)
        self.assertIn('.SH "STAT OUTPUT"', man)
        for opt in ("watch", "json"):
            self.assertIn("\\-\\-" + opt, man)


class WatchTest(ShmDirTest):
    def start_watch(self, pid, *extra):
        p = subprocess.Popen([PYTHON, RINGSHIM, "stat", str(pid), "--watch", "0.1"] + list(extra),
                             env=clean_env(RINGSHIM_SHM_DIR=self.dir), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.stdout.close)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def test_watch_until_process_exits(self):
        sleeper = subprocess.Popen(["sleep", "30"])
        self.addCleanup(lambda: sleeper.poll() is None and sleeper.kill())
        path = self.put(sleeper.pid, build_segment(sleeper.pid, own_start_time(sleeper.pid),
                                                   retired={"call_read": 1}))
        p = self.start_watch(sleeper.pid, "--json")
        first = json.loads(p.stdout.readline())
        self.assertEqual(first["pid"], sleeper.pid)
        self.assertEqual(first["rates"]["call_read"], 0)
        self.assertEqual(first["counters"]["call_read"], 1)
        self.assertGreater(first["interval_s"], 0.05)
        # More calls: a later sample shows a rate.
        with open(path, "wb") as f:
            f.write(build_segment(sleeper.pid, own_start_time(sleeper.pid),
                                  retired={"call_read": 1001}))
        for _ in range(50):
            line = json.loads(p.stdout.readline())
            if line["rates"]["call_read"] > 0:
                break
        self.assertGreater(line["rates"]["call_read"], 0)
        self.assertEqual(line["counters"]["call_read"], 1001)
        # The process exits (normally: its segment goes).
        os.unlink(path)
        sleeper.kill()
        sleeper.wait()
        out, errs = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, errs)
        self.assertIn("process %d has exited" % sleeper.pid, errs)
        for line in out.splitlines():
            json.loads(line)

    def test_watch_process_killed_segment_left(self):
        sleeper = subprocess.Popen(["sleep", "30"])
        self.addCleanup(lambda: sleeper.poll() is None and sleeper.kill())
        self.put(sleeper.pid, build_segment(sleeper.pid, own_start_time(sleeper.pid)))
        p = self.start_watch(sleeper.pid)
        self.assertIn("watching PID %d" % sleeper.pid, p.stdout.readline())
        sleeper.kill()
        sleeper.wait()
        out, errs = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, errs)
        self.assertIn("process %d has exited; its segment was left behind" % sleeper.pid, out)

    def test_watch_sigint_exits_0(self):
        me = os.getpid()
        self.put(me, build_segment(me, own_start_time()))
        p = self.start_watch(me)
        p.stdout.readline()                   # the header
        line = p.stdout.readline()            # one sample
        self.assertIn("calls/s 0", line)
        p.send_signal(signal.SIGINT)
        out, errs = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, errs)
        self.assertNotIn("Traceback", errs)


def library():
    lib = os.environ.get("RINGSHIM_TEST_LIB") or os.path.join(REPO, "build", "libringshim.so")
    return lib if os.path.isfile(lib) else None


ECHO = r"""
import signal, socket, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
a, b = socket.socketpair()
sys.stdout.write("up\n"); sys.stdout.flush()
end = time.time() + float(sys.argv[1])
while not stop and time.time() < end:
    a.send(b"x" * 64)
    b.recv(64)
    time.sleep(0.0005)
"""


@unittest.skipUnless(library(), "build/libringshim.so is not built")
class LiveTest(unittest.TestCase):
    def test_live_process(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "echo.py")
            with open(script, "w") as f:
                f.write(ECHO)
            host = subprocess.Popen([sys.executable, script, "20"],
                                    env=clean_env(LD_PRELOAD=os.environ.get("RINGSHIM_TEST_PRELOAD")
                                                  or library(), RINGSHIM_MODE="strict"),
                                    stdout=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True)
            self.addCleanup(host.stdout.close)
            self.addCleanup(lambda: host.poll() is None and host.kill())
            self.assertEqual(host.stdout.readline(), "up\n")
            seg = "/dev/shm/ringshim.%d" % host.pid
            self.assertTrue(os.path.exists(seg))
            env = clean_env()
            r1 = ringshim(["stat", str(host.pid), "--json"], env=env)
            self.assertEqual(r1.returncode, 0, r1.stderr)
            a = json.loads(r1.stdout)
            time.sleep(0.5)
            r2 = ringshim(["stat", str(host.pid)], env=env)
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertTrue(r2.stdout.startswith("PID %d (python" % host.pid), r2.stdout)
            m = [l for l in r2.stdout.splitlines() if l.strip().startswith("calls ")][0].split()
            calls2 = int(m[1])
            b = json.loads(ringshim(["stat", str(host.pid), "--json"], env=env).stdout)
            self.assertEqual((a["pid"], a["mode"], a["alive"]), (host.pid, "strict", True))
            self.assertGreater(a["counters"]["call_send"], 0)
            self.assertGreater(b["counters"]["call_send"], a["counters"]["call_send"])
            self.assertGreater(b["counters"]["call_recv"], a["counters"]["call_recv"])
            self.assertGreater(calls2, a["counters"]["calls"])
            self.assertGreaterEqual(b["counters"]["served_ring"], b["counters"]["call_send"])
            self.assertGreaterEqual(b["gauges"]["rings_live"], 1)
            lst = ringshim(["stat"], env=env)
            self.assertRegex(lst.stdout, r"(?m)^\s*%d\s+python\S*\s+strict\s" % host.pid)
            host.send_signal(signal.SIGTERM)
            self.assertEqual(host.wait(timeout=20), 0)
            self.assertFalse(os.path.exists(seg), "segment left after a normal exit")
            r = ringshim(["stat", str(host.pid)], env=env)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no ringshim segment for PID %d" % host.pid, r.stderr)


if __name__ == "__main__":
    unittest.main()
