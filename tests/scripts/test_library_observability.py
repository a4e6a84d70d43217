"""What the library itself shows: log lines (banner, bad variables, log
levels, RINGSHIM_LOG_FILE), the RINGSHIM_STATS lines of forked processes,
and its /dev/shm segment (created 0600 for the process's user, absent with
RINGSHIM_DISABLE=1, removed at exit and before exec, left by SIGKILL and
then cleaned by `ringshim stat`).

Uses the real library (skipped when build/libringshim.so is not built) with
small Python programs and /bin/true as hosts."""
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from types import SimpleNamespace

from rstest_util import REPO, clean_env, python_for_others, ringshim


def library():
    lib = os.environ.get("RINGSHIM_TEST_LIB") or os.path.join(REPO, "build", "libringshim.so")
    return lib if os.path.isfile(lib) else None


def preload():
    """What to preload: the sanitizer runtimes come first in sanitizer runs."""
    return os.environ.get("RINGSHIM_TEST_PRELOAD") or library()


def shim_env(**extra):
    return clean_env(LD_PRELOAD=preload(), **extra)


def ringshim_lines(text):
    return [line for line in text.splitlines() if line.startswith("ringshim[")]


def run(argv, env, cwd=None):
    """Like subprocess.run (text, stdin from /dev/null), keeping the pid."""
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, errs = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    return SimpleNamespace(pid=p.pid, returncode=p.returncode, stdout=out, stderr=errs)


def segment(pid):
    return "/dev/shm/ringshim.%d" % pid


# A host that says "up" once running (the library's constructor has run by
# then), waits until its stdin closes, and exits normally.
WAIT_HOST = "import sys; sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.read()"


@unittest.skipUnless(library(), "build/libringshim.so is not built")
class LibraryTest(unittest.TestCase):
    def run_true(self, **env):
        p = subprocess.Popen(["/bin/true"], env=shim_env(**env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, errs = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, errs)
        return p.pid, errs

    def start_host(self, code=WAIT_HOST, env=None, python=None, **kw):
        p = subprocess.Popen([python or sys.executable, "-c", code], env=env or shim_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **kw)
        self.addCleanup(self._stop, p)
        self.assertEqual(p.stdout.readline(), "up\n", p.stderr.read() if p.poll() else "")
        return p

    def _stop(self, p):
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        for f in (p.stdin, p.stdout, p.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        try:
            os.unlink(segment(p.pid))  # left if killed
        except OSError:
            pass

    # ---- log lines -------------------------------------------------------

    def test_info_banner(self):
        pid, errs = self.run_true(RINGSHIM_LOG="info")
        lines = ringshim_lines(errs)
        self.assertEqual(len(lines), 1, errs)
        self.assertRegex(lines[0], r"^ringshim\[true %d\]: loaded: mode=batch "
                         r"fds=0x[0-9a-f]+ ring_entries=\d+; set: RINGSHIM_LOG=info$" % pid)
        pid, errs = self.run_true(RINGSHIM_LOG="info", RINGSHIM_MODE="strict")
        self.assertIn("ringshim[true %d]: loaded: mode=strict " % pid, errs)
        pid, errs = self.run_true(RINGSHIM_LOG="info", RINGSHIM_MODE="batch")
        self.assertIn("ringshim[true %d]: loaded: mode=batch " % pid, errs)

    def test_default_is_silent(self):
        self.assertEqual(self.run_true()[1], "")

    def test_warn_one_line_per_bad_variable(self):
        pid, errs = self.run_true(RINGSHIM_RING_ENTRIES="huge")
        lines = ringshim_lines(errs)
        self.assertEqual(len(lines), 1, errs)
        self.assertTrue(lines[0].startswith("ringshim[true %d]: " % pid), lines[0])
        for word in ("RINGSHIM_RING_ENTRIES", "'huge'", "using the default 256"):
            self.assertIn(word, lines[0])
        pid, errs = self.run_true(RINGSHIM_RING_ENTRIES="huge", RINGSHIM_MODE="fast",
                                  RINGSHIM_FLUSH_US="-1")
        lines = ringshim_lines(errs)
        self.assertEqual(len(lines), 3, errs)
        for name in ("RINGSHIM_RING_ENTRIES", "RINGSHIM_MODE", "RINGSHIM_FLUSH_US"):
            self.assertEqual(len([l for l in lines if name in l and "using the default" in l]),
                             1, (name, errs))

    def test_bad_value_falls_back_to_the_default(self):
        with tempfile.TemporaryDirectory() as tmp:
            stats = os.path.join(tmp, "stats")
            self.run_true(RINGSHIM_STATS=stats)
            pid, errs = self.run_true(RINGSHIM_MODE="fast", RINGSHIM_STATS=stats)
            self.assertIn("RINGSHIM_MODE='fast' is not valid", errs)
            with open(stats) as f:
                default, line = [json.loads(l) for l in f]
            self.assertEqual((line["pid"], line["mode"]), (pid, default["mode"]))
            self.assertIn("using the default %s" % default["mode"], errs)

    def test_quiet_prints_nothing_even_for_a_bad_variable(self):
        pid, errs = self.run_true(RINGSHIM_LOG="quiet", RINGSHIM_RING_ENTRIES="huge",
                                  RINGSHIM_MODE="fast")
        self.assertEqual(ringshim_lines(errs), [])

    def test_bad_log_level_itself(self):
        pid, errs = self.run_true(RINGSHIM_LOG="loud")
        lines = ringshim_lines(errs)
        self.assertEqual(len(lines), 1, errs)
        self.assertIn("RINGSHIM_LOG='loud'", lines[0])
        self.assertIn("using the default warn", lines[0])

    def test_log_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "rs.log")
            for _ in range(2):
                pid, errs = self.run_true(RINGSHIM_LOG_FILE=log, RINGSHIM_LOG="info",
                                          RINGSHIM_MODE="fast")
                self.assertEqual(errs, "")
            with open(log) as f:
                lines = f.read().splitlines()
            # Appended: two lines (bad variable, banner) per run.
            self.assertEqual(len(lines), 4, lines)
            self.assertIn("RINGSHIM_MODE='fast' is not valid", lines[2])
            self.assertTrue(lines[3].startswith("ringshim[true %d]: loaded: mode=" % pid))

    def test_log_file_that_cannot_be_opened(self):
        pid, errs = self.run_true(RINGSHIM_LOG_FILE="/nonexistent-dir/rs.log")
        lines = ringshim_lines(errs)
        self.assertEqual(len(lines), 1, errs)
        self.assertIn("RINGSHIM_LOG_FILE=/nonexistent-dir/rs.log cannot be opened", lines[0])

    def test_first_passthrough_logged_at_info(self):
        # The read of a tty-less /dev/null is an fd kind the ring never serves.
        code = "import os; os.read(os.open('/dev/null', os.O_RDONLY), 1)"
        p = subprocess.run([sys.executable, "-c", code], env=shim_env(RINGSHIM_LOG="info"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        lines = [l for l in ringshim_lines(p.stderr) if "passing calls to libc" in l]
        self.assertTrue(lines, p.stderr)
        self.assertEqual(len([l for l in lines if "pt_fd_kind" in l]), 1, p.stderr)

    # ---- RINGSHIM_STATS ---------------------------------------------------

    def test_stats_line_on_stderr(self):
        pid, errs = self.run_true(RINGSHIM_STATS="1")
        lines = ringshim_lines(errs)
        self.assertEqual(len(lines), 1, errs)
        prefix = "ringshim[true %d]: stats " % pid
        self.assertTrue(lines[0].startswith(prefix), lines[0])
        obj = json.loads(lines[0][len(prefix):])
        self.assertEqual((obj["ringshim"], obj["pid"], obj["prog"]), (1, pid, "true"))
        self.assertIn(obj["mode"], ("strict", "batch"))
        self.assertEqual(obj["counters"]["calls"],
                         sum(v for k, v in obj["counters"].items() if k.startswith("call_")))
        self.assertEqual(obj["counters"]["passthrough"],
                         sum(v for k, v in obj["counters"].items() if k.startswith("pt_")))
        self.assertEqual(set(obj["gauges"]), {"wb_pending", "wb_peak", "stash_bytes",
                                              "acceptq_depth", "fds_managed", "rings_live"})

    FORK_HOST = r"""
import os, socket, sys
a, b = socket.socketpair()
for _ in range(2):
    b.sendmsg([b"parent"])
    a.recv(16)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    for word in (b"one", b"two", b"three"):
        a.send(word)
    a.shutdown(socket.SHUT_WR)
    sys.exit(0)      # a normal exit: the child's stats line is written
os.waitpid(pid, 0)
print(pid)
"""

    def test_fork_child_has_its_own_counters(self):
        with tempfile.TemporaryDirectory() as tmp:
            stats = os.path.join(tmp, "stats")
            for mode in ("strict", "batch"):
                if os.path.exists(stats):
                    os.unlink(stats)
                p = run([sys.executable, "-c", self.FORK_HOST],
                        env=shim_env(RINGSHIM_STATS=stats, RINGSHIM_MODE=mode))
                self.assertEqual(p.returncode, 0, p.stderr)
                child = int(p.stdout.split()[-1])
                with open(stats) as f:
                    lines = [json.loads(l) for l in f]
                self.assertEqual(len(lines), 2, lines)
                by_pid = {l["pid"]: l for l in lines}
                self.assertEqual(set(by_pid), {p.pid, child})
                parent_c, child_c = by_pid[p.pid]["counters"], by_pid[child]["counters"]
                self.assertEqual(by_pid[child]["ppid"], p.pid)
                self.assertEqual(by_pid[child]["mode"], mode)
                self.assertEqual((parent_c["call_sendmsg"], parent_c["call_recv"],
                                  parent_c["call_send"], parent_c["call_shutdown"]),
                                 (2, 2, 0, 0), mode)
                self.assertEqual((child_c["call_sendmsg"], child_c["call_recv"],
                                  child_c["call_send"], child_c["call_shutdown"]),
                                 (0, 0, 3, 1), mode)

    def test_fork_c_program(self):
        prog = os.path.join(os.environ.get("RINGSHIM_TEST_BUILD") or
                            os.path.join(REPO, "build"), "tests", "integ", "stats_fork")
        if not os.access(prog, os.X_OK):
            self.skipTest("build/tests/integ/stats_fork is not built (make tests)")
        with tempfile.TemporaryDirectory() as tmp:
            stats = os.path.join(tmp, "stats")
            p = run([prog], env=shim_env(RINGSHIM_STATS=stats), cwd=tmp)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(stats) as f:
                lines = [json.loads(l) for l in f]
        self.assertEqual(len(lines), 2, lines)
        child = [l for l in lines if l["pid"] != p.pid]
        parent = [l for l in lines if l["pid"] == p.pid]
        self.assertEqual((len(parent), len(child)), (1, 1), lines)
        child, parent = child[0], parent[0]
        self.assertEqual(child["ppid"], p.pid)
        self.assertEqual((parent["counters"]["call_writev"], parent["counters"]["call_send"]),
                         (2, 0))
        self.assertEqual((child["counters"]["call_writev"], child["counters"]["call_send"],
                          child["counters"]["call_shutdown"]), (0, 3, 1))

    # ---- the segment -------------------------------------------------------

    def test_segment_mode_owner_and_removal_at_exit(self):
        p = self.start_host()
        st = os.stat(segment(p.pid))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        r = ringshim(["stat", str(p.pid), "--json"], env=clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        obj = json.loads(r.stdout)
        self.assertEqual((obj["pid"], obj["alive"]), (p.pid, True))
        self.assertTrue(obj["prog"].startswith("python"), obj["prog"])
        p.stdin.close()
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(segment(p.pid)))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to start a process as another user")
    def test_segment_owned_by_the_process_user(self):
        py = python_for_others()
        if not py:
            self.skipTest("no Python interpreter that nobody may run")

        def as_nobody():
            os.setgid(65534)
            os.setuid(65534)
        p = self.start_host(preexec_fn=as_nobody, cwd="/", python=py)
        st = os.stat(segment(p.pid))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (65534, 0o600))
        p.stdin.close()
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(segment(p.pid)))

    def test_disable_creates_no_segment(self):
        p = self.start_host(env=shim_env(RINGSHIM_DISABLE="1", RINGSHIM_LOG="info"))
        self.assertFalse(os.path.exists(segment(p.pid)))
        r = ringshim(["stat", str(p.pid)], env=clean_env())
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), "ringshim: no ringshim segment for PID %d: not "
                         "running with the shim, or started before it" % p.pid)
        p.stdin.close()
        p.wait(timeout=30)
        self.assertEqual(ringshim_lines(p.stderr.read()), [])  # no banner either

    def test_segment_removed_before_exec(self):
        code = ("import os, sys; sys.stdout.write('up\\n'); sys.stdout.flush(); "
                "sys.stdin.readline(); env = dict(os.environ); env.pop('LD_PRELOAD'); "
                "os.execve('/bin/sleep', ['sleep', '30'], env)")
        p = self.start_host(code)
        self.assertTrue(os.path.exists(segment(p.pid)))
        p.stdin.write("go\n")
        p.stdin.flush()
        for _ in range(200):
            try:
                with open("/proc/%d/comm" % p.pid) as f:
                    if f.read().strip() == "sleep":
                        break
            except OSError:
                break
            time.sleep(0.02)
        self.assertFalse(os.path.exists(segment(p.pid)))

    def test_killed_process_leaves_segment_that_stat_cleans(self):
        p = self.start_host()
        path = segment(p.pid)
        p.kill()
        p.wait(timeout=30)
        self.assertTrue(os.path.exists(path), "no segment left by SIGKILL?")
        # Its last counters can still be read, with a note.
        r = ringshim(["stat", str(p.pid)], env=clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("process %d is gone" % p.pid, r.stderr)
        self.assertIn("not running", r.stdout)
        # The listing removes it (and any other stale segment in /dev/shm).
        r = ringshim(["stat"], env=clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"removed \d+ stale segments? \(")
        self.assertFalse(os.path.exists(path))
        self.assertNotRegex(r.stdout, r"(?m)^\s*%d\s" % p.pid)

    def test_stat_sees_every_live_thread(self):
        code = r"""
import socket, sys, threading
go = threading.Event()
def work():
    a, b = socket.socketpair()
    for _ in range(10):
        a.send(b"x")
        b.recv(1)
    go.wait()
ts = [threading.Thread(target=work) for _ in range(3)]
for t in ts: t.start()
import time; time.sleep(0.3)
sys.stdout.write("up\n"); sys.stdout.flush()
sys.stdin.read()
go.set()
for t in ts: t.join()
"""
        p = self.start_host(code)
        obj = json.loads(ringshim(["stat", str(p.pid), "--json"], env=clean_env()).stdout)
        self.assertGreaterEqual(obj["live_threads"], 3)
        self.assertEqual(obj["counters"]["call_send"], 30)
        self.assertEqual(obj["counters"]["call_recv"], 30)
        p.stdin.close()
        self.assertEqual(p.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main()
