"""When io_uring cannot be had, the host program must not notice: each of
these runs an integration program (build/tests/integ/rw_basic) under the
shim with io_uring (or SQPOLL) refused in a different way, and checks its
output equals the native run's, that the shim said why in exactly one line,
and that it did not crash or hang.

  - SQPOLL refused (an SQ thread CPU that does not exist): batch mode goes
    on without a submission thread;
  - io_uring_setup failing (RINGSHIM_FAULT=setup, EPERM as seccomp or
    kernel.io_uring_disabled would give it);
  - kernel.io_uring_disabled=2 for real (root only; restored afterwards)."""
import os
import subprocess
import unittest

from rstest_util import REPO, clean_env

BUILD = os.environ.get("RINGSHIM_TEST_BUILD") or os.path.join(REPO, "build")
LIB = os.environ.get("RINGSHIM_TEST_LIB") or os.path.join(BUILD, "libringshim.so")
HOST = os.path.join(BUILD, "tests", "integ", "rw_basic")
SYSCTL = "/proc/sys/kernel/io_uring_disabled"


def run(env, cwd):
    p = subprocess.run([HOST], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    return p


@unittest.skipUnless(os.path.isfile(LIB) and os.access(HOST, os.X_OK),
                     "library or integration programs not built")
class FallbackTest(unittest.TestCase):
    def setUp(self):
        import tempfile
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.native = run(clean_env(), self.dir.name)
        self.assertEqual(self.native.returncode, 0, self.native.stderr)

    def shim(self, **extra):
        env = clean_env(LD_PRELOAD=os.environ.get("RINGSHIM_TEST_PRELOAD") or LIB,
                        RINGSHIM_LOG="warn", **extra)
        return run(env, self.dir.name)

    def assert_same_with_one_line(self, p, words):
        self.assertEqual(p.returncode, self.native.returncode, p.stderr)
        self.assertEqual(p.stdout, self.native.stdout)
        lines = [l for l in p.stderr.splitlines() if l.startswith("ringshim[")]
        self.assertEqual(len(lines), 1, p.stderr)
        for w in words:
            self.assertIn(w, lines[0])

    def test_sqpoll_refused_runs_batch_without_it(self):
        p = self.shim(RINGSHIM_MODE="batch", RINGSHIM_SQPOLL="1", RINGSHIM_SQPOLL_CPU="4095")
        self.assert_same_with_one_line(p, ["SQPOLL refused"])

    def test_setup_failure_passes_everything_through(self):
        for mode in ("strict", "batch"):
            with self.subTest(mode=mode):
                p = self.shim(RINGSHIM_MODE=mode, RINGSHIM_FAULT="setup")
                self.assert_same_with_one_line(p, ["passing all calls through"])

    @unittest.skipUnless(os.geteuid() == 0 and os.path.exists(SYSCTL),
                         "needs root and kernel.io_uring_disabled")
    def test_kernel_io_uring_disabled(self):
        with open(SYSCTL) as f:
            old = f.read().strip()
        try:
            with open(SYSCTL, "w") as f:
                f.write("2")
            for mode in ("strict", "batch"):
                with self.subTest(mode=mode):
                    p = self.shim(RINGSHIM_MODE=mode)
                    self.assert_same_with_one_line(p, ["passing all calls through"])
        finally:
            with open(SYSCTL, "w") as f:
                f.write(old)


if __name__ == "__main__":
    unittest.main()
