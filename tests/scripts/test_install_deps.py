"""scripts/install-deps with fake dpkg-query, apt-get, apt-cache, service
and id in PATH: nothing is installed and root is not needed."""
import os
import shutil
import subprocess
import tempfile
import unittest

from rstest_util import SCRIPTS

SCRIPT = os.path.join(SCRIPTS, "install-deps")

FAKES = {
    "id": '#!/bin/sh\necho "${FAKE_UID:-1000}"\n',
    "dpkg-query": '#!/bin/sh\necho "dpkg-query $*" >> "$FAKE_LOG"\n'
                  'for p in $FAKE_INSTALLED; do [ "$p" = "$3" ] && '
                  '{ printf "install ok installed"; exit 0; }; done\nexit 1\n',
    "apt-get": '#!/bin/sh\necho "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$FAKE_LOG"\n'
               'exit "${FAKE_APT_STATUS:-0}"\n',
    "apt-cache": '#!/bin/sh\necho "apt-cache $*" >> "$FAKE_LOG"\n'
                 'case "$2" in linux-perf) echo "  Candidate: (none)";; '
                 '*) echo "  Candidate: 1.0";; esac\n',
    "service": '#!/bin/sh\necho "service $*" >> "$FAKE_LOG"\n',
}


class InstallDepsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringshim-deps-test-")
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        for name, text in FAKES.items():
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        for tool in ("head", "tr", "sed", "sleep", "cat"):
            real = shutil.which(tool)
            if real:
                os.symlink(real, os.path.join(self.bin, tool))
        self.lists = os.path.join(self.dir, "lists")
        os.mkdir(self.lists)
        open(os.path.join(self.lists, "deb_dists_main_binary-amd64_Packages.lz4"), "w").close()
        self.log = os.path.join(self.dir, "log")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_deps(self, *args, uid=1000, installed="", apt_status=0):
        env = {"PATH": self.bin, "FAKE_UID": str(uid), "FAKE_LOG": self.log,
               "FAKE_INSTALLED": installed, "FAKE_APT_STATUS": str(apt_status),
               "RINGSHIM_APT_LISTS": self.lists}
        r = subprocess.run(["/bin/bash", SCRIPT] + list(args), env=env, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        calls = []
        if os.path.exists(self.log):
            with open(self.log) as f:
                calls = [x for x in f.read().splitlines() if not x.startswith("dpkg-query")]
        return r, calls

    def test_not_root_one_line(self):
        r, calls = self.run_deps("--packages", "memcached", "wrk", "redis-tools",
                                 installed="wrk")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "ringshim: missing packages: memcached redis-tools — run: "
                                   "sudo apt-get install memcached redis-tools\n")
        self.assertEqual(calls, [])

    def test_nothing_missing(self):
        r, calls = self.run_deps("demo", installed="gnuplot-nox")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.assertEqual(calls, [])

    def test_root_installs_missing_and_stops_services(self):
        r, calls = self.run_deps("--packages", "memcached", "wrk", uid=0, installed="wrk")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(calls[0], "apt-get install -y --no-install-recommends memcached "
                                   "DEBIAN_FRONTEND=noninteractive")
        self.assertNotIn("apt-get update DEBIAN_FRONTEND=noninteractive", calls)
        self.assertIn("service memcached stop", calls)

    def test_root_updates_when_install_fails(self):
        r, calls = self.run_deps("--packages", "memcached", uid=0, apt_status=100)
        self.assertEqual(r.returncode, 1)
        self.assertEqual([c.split()[1] for c in calls if c.startswith("apt-get")],
                         ["install", "update", "install"])
        self.assertIn("could not install: memcached", r.stderr)

    def test_root_updates_when_lists_empty(self):
        os.unlink(os.path.join(self.lists, "deb_dists_main_binary-amd64_Packages.lz4"))
        r, calls = self.run_deps("--packages", "memcached", uid=0)
        self.assertEqual(r.returncode, 0)
        self.assertEqual([c.split()[1] for c in calls if c.startswith("apt-get")],
                         ["update", "install"])

    def test_optional_package_never_fails(self):
        # bench lists linux-perf as optional; the fake apt-cache has no candidate for it
        installed = ("nginx-light redis-server redis-tools memcached libmemcached-tools "
                     "haproxy lighttpd wrk gnuplot-nox")
        r, calls = self.run_deps("bench", uid=0, installed=installed)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("linux-perf is not available", r.stderr)
        self.assertFalse([c for c in calls if c.startswith("apt-get install")])
        r, calls = self.run_deps("bench", uid=1000, installed=installed)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_groups_and_usage(self):
        r, _ = self.run_deps("build", "test", "--check", installed="")
        self.assertEqual(r.returncode, 1)
        line = r.stderr.strip()
        # (liburing-dev, check and nginx-light may be found through real files)
        for pkg in ("gcc", "make", "redis-server", "libmemcached-tools", "strace",
                    "gnuplot-nox"):
            self.assertIn(" %s " % pkg, line + " ")
        self.assertNotIn("linux-perf", line)
        r, _ = self.run_deps("nonsense")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown group 'nonsense'", r.stderr)

    @unittest.skipUnless(shutil.which("shellcheck"), "shellcheck not installed")
    def test_shellcheck(self):
        r = subprocess.run(["shellcheck", SCRIPT], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
