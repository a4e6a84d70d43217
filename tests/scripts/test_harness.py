"""`ringshim ab` end to end with a tiny Python echo server and load script
(fixtures/echo_server.py, fixtures/echo_load.py) and a dummy library."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from rstest_util import DUMMY_LIB, FIXTURES, PYTHON, RINGSHIM, clean_env, procs_matching, ringshim
from ringshim_lib import harness, procs

SERVER = os.path.join(FIXTURES, "echo_server.py")
LOAD = os.path.join(FIXTURES, "echo_load.py")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def read_json(path):
    return json.loads(read(path))


def server_cmd(extra=""):
    return "%s %s {port} %s" % (PYTHON, SERVER, extra)


def load_cmd(extra="", secs=0.25):
    return "%s %s {port} %s %s" % (PYTHON, LOAD, secs, extra)


class HarnessTest(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="ringshim-ab-test-")

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def assertNothingLeft(self, port):
        left = procs_matching("%s %d" % (SERVER, port)) + procs_matching("%s %d" % (LOAD, port))
        self.assertEqual(left, [], "processes left behind")
        self.assertFalse(procs.port_in_use(port), "port %d still listening" % port)

    def ab(self, port, *args, **kw):
        return ringshim(["ab", "--ready", str(port), "--out", self.out] + list(args), **kw)

    def test_two_variants_report(self):
        port = 17711
        r = self.ab(port, "--server", server_cmd("--fork"), "--load", load_cmd(),
                    "--variants", "off,strict", "--runs", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("report.md", "report.json"):
            self.assertTrue(os.path.isfile(os.path.join(self.out, name)), name)
        md = read(os.path.join(self.out, "report.md"))
        for text in ("| off |", "| strict |", "command line:", "kernel", "CPU:",
                     "echo_server.py %d --fork" % port):
            self.assertIn(text, md)
        data = read_json(os.path.join(self.out, "report.json"))
        self.assertEqual([(x["run"], x["variant"]) for x in data["runs"]],
                         [(1, "off"), (1, "strict"), (2, "off"), (2, "strict")])
        self.assertTrue(all(x["ok"] for x in data["runs"]))
        self.assertEqual([s["variant"] for s in data["summary"]], ["off", "strict"])
        strict = [x for x in data["runs"] if x["variant"] == "strict"]
        for x in strict:
            # the fake server and its forked child each wrote a stats line
            self.assertEqual(len(x["shim"]["processes"]), 2)
            self.assertGreater(x["enter_per_req"], 0)
            self.assertGreater(x["rps"], 0)
            self.assertGreaterEqual(x["cpu_s"], 0)
        off = [x for x in data["runs"] if x["variant"] == "off"]
        self.assertTrue(all("shim" not in x for x in off))
        for x in data["runs"]:  # counted, or said to be unavailable: never silently 0
            self.assertTrue(x.get("syscalls") is not None or x.get("syscalls_unavailable"))
        env = {v["name"]: v["env"] for v in data["config"]["variants"]}
        self.assertEqual(env["strict"]["LD_PRELOAD"], DUMMY_LIB)
        self.assertEqual(env["strict"]["RINGSHIM_MODE"], "strict")
        self.assertNotIn("LD_PRELOAD", env["off"])
        if shutil.which("gnuplot"):
            self.assertTrue(os.path.getsize(os.path.join(self.out, "chart.svg")) > 0)
        else:
            self.assertIn("gnuplot is not installed", md)
        self.assertIn("| off |", r.stdout)  # the table is printed too
        self.assertNothingLeft(port)

    def test_reference_and_helper(self):
        port, helper = 17712, 17713
        r = self.ab(port, "--server", server_cmd(), "--load", load_cmd(secs=0.15),
                    "--variants", "off", "--reference", "other=" + server_cmd(),
                    "--helper", "%d:%s" % (helper, server_cmd().replace("{port}", str(helper))),
                    "--runs", "1", "--syscalls", "off", "--warmup", "0.2")
        self.assertEqual(r.returncode, 0, r.stderr)
        data = read_json(os.path.join(self.out, "report.json"))
        self.assertEqual([x["variant"] for x in data["runs"]], ["off", "other"])
        self.assertEqual(data["config"]["parser"], "auto (rs-loadgen)")
        warm = os.path.join(self.out, "raw", "run-1-off.warmup.txt")
        self.assertTrue(os.path.isfile(warm))
        self.assertEqual(data["config"]["helpers"][0]["port"], helper)
        self.assertNothingLeft(port)
        self.assertNothingLeft(helper)

    def test_preset_reference_only_when_asked(self):
        # A preset's reference runs with the preset's default variants, not
        # when --variants lists others (unless it is listed too).
        port = 17718
        pdir = tempfile.mkdtemp(prefix="ringshim-presets-")
        self.addCleanup(shutil.rmtree, pdir, True)
        with open(os.path.join(pdir, "withref.json"), "w") as f:
            json.dump({"server": server_cmd(), "load": load_cmd(secs=0.15),
                       "ports": {"port": port}, "variants": "off",
                       "reference": {"other": server_cmd()}}, f)
        env = clean_env(RINGSHIM_LIB=DUMMY_LIB, RINGSHIM_PRESETS_DIR=pdir)
        for variants, want in ((None, ["off", "other"]), ("off", ["off"]),
                               ("off,other", ["off", "other"])):
            args = ["--preset", "withref", "--runs", "1", "--syscalls", "off"]
            if variants:
                args += ["--variants", variants]
            r = self.ab(port, *args, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            data = read_json(os.path.join(self.out, "report.json"))
            self.assertEqual([x["variant"] for x in data["runs"]], want, variants)
        self.assertNothingLeft(port)

    def test_server_never_ready(self):
        port = 17714
        t = time.monotonic()
        r = self.ab(port, "--server", server_cmd("--never-ready --fork"), "--load", load_cmd(),
                    "--variants", "off", "--runs", "2", "--ready-timeout", "1.5")
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - t, 15)
        self.assertIn("never became ready", r.stderr)
        self.assertIn("echo_server.py %d --never-ready" % port, r.stderr)
        self.assertIn("echo_server: starting on %d" % port, r.stderr)  # its log's last lines
        self.assertNothingLeft(port)

    def test_server_exits_early(self):
        port = 17715
        r = self.ab(port, "--server", "%s -c 'import sys; sys.exit(3)'" % PYTHON,
                    "--load", load_cmd(), "--variants", "off", "--runs", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exited with status 3 before accepting connections", r.stderr)

    def test_failing_load(self):
        port = 17716
        r = self.ab(port, "--server", server_cmd(), "--load", load_cmd("--fail"),
                    "--variants", "off", "--runs", "2", "--syscalls", "off")
        self.assertEqual(r.returncode, 1)
        data = read_json(os.path.join(self.out, "report.json"))
        self.assertEqual(len(data["runs"]), 2)  # went on after the first failure
        for x in data["runs"]:
            self.assertFalse(x["ok"])
            self.assertIn("exited with status 1", x["reason"])
        md = read(os.path.join(self.out, "report.md"))
        self.assertIn("## Failed runs", md)
        self.assertNothingLeft(port)

    def test_errors_and_unparseable_output_fail_runs(self):
        port = 17717
        r = self.ab(port, "--server", server_cmd(), "--load", load_cmd("--errors"),
                    "--variants", "off", "--runs", "1", "--syscalls", "off")
        self.assertEqual(r.returncode, 1)
        data = read_json(os.path.join(self.out, "report.json"))
        self.assertIn("reported 3 errors", data["runs"][0]["reason"])
        r = self.ab(port, "--server", server_cmd(), "--load", load_cmd("--garbage"),
                    "--variants", "off", "--runs", "1", "--syscalls", "off")
        self.assertEqual(r.returncode, 1)
        data = read_json(os.path.join(self.out, "report.json"))
        self.assertIn("cannot parse the load output", data["runs"][0]["reason"])
        self.assertNothingLeft(port)

    def test_server_ignoring_sigterm_is_killed(self):
        port = 17718
        r = self.ab(port, "--server", server_cmd("--ignore-term"), "--load", load_cmd(),
                    "--variants", "off", "--runs", "1", "--syscalls", "off",
                    "--stop-signal", "INT")
        # SIGINT is not ignored by the fixture: it exits (KeyboardInterrupt) at once
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNothingLeft(port)

    def test_port_already_in_use(self):
        port = 17719
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        try:
            r = self.ab(port, "--server", server_cmd(), "--load", load_cmd(),
                        "--variants", "off", "--runs", "1")
        finally:
            s.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("port %d on 127.0.0.1 is already in use" % port, r.stderr)
        self.assertEqual(procs_matching("%s %d" % (SERVER, port)), [])

    def test_interrupt_stops_everything(self):
        port = 17720
        p = subprocess.Popen([PYTHON, RINGSHIM, "ab", "--ready", str(port), "--out", self.out,
                              "--server", server_cmd("--fork"), "--load", load_cmd(secs=5),
                              "--variants", "off", "--runs", "3", "--syscalls", "off"],
                             env=clean_env(RINGSHIM_LIB=DUMMY_LIB), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        needle = "%s %d" % (LOAD, port)  # the load itself, not the harness's argv
        while not procs_matching(needle) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(procs_matching(needle), "load never started")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("interrupted", err)
        self.assertNothingLeft(port)

    def test_usage_errors(self):
        cases = [
            ["--server", "x", "--ready", "1"],                       # no --load
            ["--server", "x", "--load", "y"],                        # no --ready
            ["--server", "x", "--load", "y", "--ready", "1", "--variants", "off,turbo"],
            ["--server", "x {nope}", "--load", "y", "--ready", "1"],
            ["--preset", "no-such-preset"],
            ["--runs", "0"],
            ["--frobnicate"],
        ]
        for args in cases:
            r = ringshim(["ab"] + args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 2, r.stderr)
            self.assertTrue(lines[0].startswith("ringshim ab: "), r.stderr)
            self.assertIn("--help", lines[1])

    def test_missing_program_and_library(self):
        r = self.ab(17721, "--server", "/nonexistent/server {port}", "--load", load_cmd(),
                    "--variants", "off")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/server: not found", r.stderr)
        r = ringshim(["ab", "--ready", "17721", "--out", self.out, "--server", server_cmd(),
                      "--load", load_cmd(), "--variants", "off,batch"],
                     env=clean_env(RINGSHIM_LIB="/nonexistent/libringshim.so"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("library not found", r.stderr)


class StatsFileTest(unittest.TestCase):
    def test_sum_and_partial(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write('{"ringshim":1,"pid":1,"prog":"a","mode":"batch","counters":'
                    '{"calls":10,"enter":3}}\n')
            f.write('{"ringshim":1,"pid":2,"prog":"a","mode":"batch","counters":'
                    '{"calls":5,"enter":2,"served_ring":4}}\n')
            f.write('{"ringshim":1,"pid":3,"prog":"a","coun')  # cut short
        try:
            stats, note = harness.read_shim_stats(f.name)
            self.assertEqual(stats["counters"], {"calls": 15, "enter": 5, "served_ring": 4})
            self.assertEqual(len(stats["processes"]), 2)
            self.assertIn("1 malformed", note)
        finally:
            os.unlink(f.name)
        stats, note = harness.read_shim_stats("/nonexistent.jsonl")
        self.assertIsNone(stats)
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("garbage\n")
        try:
            self.assertIsNone(harness.read_shim_stats(f.name)[0])
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
