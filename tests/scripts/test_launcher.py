"""`ringshim run`: exit codes, environment, -v, help and man page coverage.

Uses a dummy library (an empty file, via RINGSHIM_LIB): the dynamic loader
ignores it with a warning, so nothing here needs the real library."""
import os
import re
import signal
import stat
import tempfile
import unittest

from rstest_util import DUMMY_LIB, REPO, clean_env, ringshim
from ringshim_lib import envvars, launcher


def env_output(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


class ExitStatusTest(unittest.TestCase):
    def test_status_passes_through(self):
        r = ringshim(["run", "--", "sh", "-c", "exit 7"])
        self.assertEqual(r.returncode, 7)

    def test_signal_death_passes_through(self):
        r = ringshim(["run", "sh", "-c", "kill -TERM $$"])
        self.assertEqual(r.returncode, -signal.SIGTERM)

    def test_command_not_found(self):
        r = ringshim(["run", "no-such-command-ringshim-test"])
        self.assertEqual(r.returncode, 127)
        self.assertIn("ringshim: no-such-command-ringshim-test: command not found", r.stderr)

    def test_not_executable(self):
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write("#!/bin/sh\nexit 0\n")
        try:
            os.chmod(f.name, stat.S_IRUSR | stat.S_IWUSR)
            r = ringshim(["run", f.name])
            self.assertEqual(r.returncode, 126, r.stderr)
            self.assertIn(f.name, r.stderr)
        finally:
            os.unlink(f.name)

    def test_missing_library(self):
        r = ringshim(["run", "true"], env=clean_env(RINGSHIM_LIB="/nonexistent/libringshim.so"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("library not found: /nonexistent/libringshim.so", r.stderr)

    def test_bad_option_and_no_command(self):
        for args in (["run", "--bogus", "true"], ["run"], ["run", "--profile", "fast", "true"],
                     ["run", "--log", "loud", "true"], ["nonsense"]):
            r = ringshim(args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("Try 'ringshim", r.stderr)


class EnvironmentTest(unittest.TestCase):
    def test_preload_prepended_and_kept(self):
        r = ringshim(["run", "env"], env=clean_env(RINGSHIM_LIB=DUMMY_LIB,
                                                   LD_PRELOAD="libfoo.so libbar.so"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(env_output(r.stdout)["LD_PRELOAD"],
                         DUMMY_LIB + ":libfoo.so:libbar.so")

    def test_profiles(self):
        for profile, expected in envvars.PROFILES.items():
            r = ringshim(["run", "--profile", profile, "env"])
            env = env_output(r.stdout)
            for k, v in expected[1].items():
                self.assertEqual(env.get(k), v, (profile, k))
        env = env_output(ringshim(["run", "--profile=latency", "env"]).stdout)
        self.assertEqual((env["RINGSHIM_MODE"], env["RINGSHIM_SQPOLL"],
                          env["RINGSHIM_BUSY_POLL_US"]), ("batch", "1", "50"))

    def test_options(self):
        env = env_output(ringshim(["run", "--sqpoll", "--stats", "--log", "debug", "--",
                                   "env"]).stdout)
        self.assertEqual((env["RINGSHIM_SQPOLL"], env["RINGSHIM_STATS"], env["RINGSHIM_LOG"]),
                         ("1", "1", "debug"))
        env = env_output(ringshim(["run", "--stats=/tmp/x.jsonl", "env"]).stdout)
        self.assertEqual(env["RINGSHIM_STATS"], "/tmp/x.jsonl")

    def test_user_environment_wins_over_profile(self):
        r = ringshim(["run", "-v", "--profile", "latency", "env"],
                     env=clean_env(RINGSHIM_LIB=DUMMY_LIB, RINGSHIM_MODE="strict"))
        env = env_output(r.stdout)
        self.assertEqual(env["RINGSHIM_MODE"], "strict")
        self.assertEqual(env["RINGSHIM_SQPOLL"], "1")
        self.assertIn("RINGSHIM_MODE=strict from the environment wins over profile latency",
                      r.stderr)

    def test_no_profile_sets_nothing(self):
        env = env_output(ringshim(["run", "env"]).stdout)
        self.assertEqual({k for k in env if k.startswith("RINGSHIM_")}, {"RINGSHIM_LIB"})

    def test_verbose_lists_every_variable(self):
        r = ringshim(["run", "-v", "--profile", "batch", "true"],
                     env=clean_env(RINGSHIM_LIB=DUMMY_LIB, RINGSHIM_SQPOL="1"))
        self.assertEqual(r.returncode, 0)
        self.assertIn("LD_PRELOAD=" + DUMMY_LIB, r.stderr)
        for var in envvars.ENV_VARS:
            self.assertIn(var.name, r.stderr)
        self.assertRegex(r.stderr, r"RINGSHIM_MODE\s+= batch\s+\(profile batch\)")
        self.assertIn("RINGSHIM_SQPOL", r.stderr)
        self.assertIn("typo?", r.stderr)

    def test_bad_value_warned(self):
        r = ringshim(["run", "true"], env=clean_env(RINGSHIM_LIB=DUMMY_LIB,
                                                    RINGSHIM_RING_ENTRIES="4"))
        self.assertEqual(r.returncode, 0)
        self.assertIn("RINGSHIM_RING_ENTRIES=4: expected an integer 8..32768", r.stderr)


class UnitTest(unittest.TestCase):
    def test_preload_helpers(self):
        self.assertEqual(launcher.preload_with("/l/libringshim.so", None), "/l/libringshim.so")
        self.assertEqual(launcher.preload_with("/l/libringshim.so",
                                               "/old/libringshim.so:a.so"),
                         "/l/libringshim.so:a.so")
        self.assertIsNone(launcher.preload_without("/l/libringshim.so", "/l/libringshim.so"))
        self.assertEqual(launcher.preload_without(None, "a.so /x/libringshim.so b.so"),
                         "a.so:b.so")

    def test_parse_run_args_stops_at_command(self):
        opts, cmd = launcher.parse_run_args(["-v", "ls", "-v", "--profile", "x"])
        self.assertTrue(opts["verbose"])
        self.assertEqual(cmd, ["ls", "-v", "--profile", "x"])
        opts, cmd = launcher.parse_run_args(["--", "--weird-name"])
        self.assertEqual(cmd, ["--weird-name"])

    def test_value_checks(self):
        self.assertIsNone(envvars.check_value("RINGSHIM_WB_MAX", "64M"))
        self.assertIsNotNone(envvars.check_value("RINGSHIM_WB_MAX", "1K"))
        self.assertIsNone(envvars.check_value("RINGSHIM_FDS", "tcp,unix"))
        self.assertIsNotNone(envvars.check_value("RINGSHIM_FDS", "tcp,ttys"))
        self.assertIsNone(envvars.check_value("RINGSHIM_SQPOLL", "yes"))
        self.assertEqual(envvars.parse_size("2k"), 2048)
        self.assertIsNone(envvars.parse_size("lots"))


class DocumentationTest(unittest.TestCase):
    def test_help_and_version(self):
        r = ringshim(["--help"])
        self.assertEqual(r.returncode, 0)
        for var in envvars.ENV_VARS:
            self.assertIn(var.name, r.stdout)
        r = ringshim(["run", "--help"])
        self.assertEqual(r.returncode, 0)
        for var in envvars.ENV_VARS:
            self.assertIn(var.name, r.stdout)
        self.assertEqual(ringshim(["ab", "--help"]).returncode, 0)
        self.assertRegex(ringshim(["--version"]).stdout, r"^ringshim \d+\.\d+")

    def test_man_page_documents_every_variable(self):
        with open(os.path.join(REPO, "docs", "ringshim.1")) as f:
            man = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
        for var in envvars.ENV_VARS + envvars.TOOL_VARS:
            self.assertTrue(re.search(r"^\.(TP\n)?\.?B[I]? %s\b" % var.name, man, re.M)
                            or re.search(r"\n\.BI? %s" % var.name, man), var.name)
            self.assertIn(var.name, man)
        for profile in envvars.PROFILES:
            self.assertIn("\n.B %s\n" % profile, man)


if __name__ == "__main__":
    unittest.main()
