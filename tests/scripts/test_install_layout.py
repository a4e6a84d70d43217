"""The command finds its package and the library both in a checkout and in
the `make install` layout (PREFIX/bin, PREFIX/share/ringshim, PREFIX/lib)."""
import os
import shutil
import subprocess
import tempfile
import unittest

from rstest_util import PYTHON, REPO, SCRIPTS, clean_env


class LayoutTest(unittest.TestCase):
    def setUp(self):
        self.prefix = tempfile.mkdtemp(prefix="ringshim-prefix-")

    def tearDown(self):
        shutil.rmtree(self.prefix, ignore_errors=True)

    def run_cmd(self, script, *args):
        return subprocess.run([PYTHON, script] + list(args), env=clean_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=30)

    def test_installed_layout(self):
        p = self.prefix
        for d in ("bin", "lib", "share/ringshim"):
            os.makedirs(os.path.join(p, d))
        # what `make install` does
        shutil.copy(os.path.join(SCRIPTS, "ringshim"), os.path.join(p, "bin", "ringshim"))
        for d in ("ringshim_lib", "presets"):
            shutil.copytree(os.path.join(SCRIPTS, d), os.path.join(p, "share", "ringshim", d),
                            ignore=shutil.ignore_patterns("__pycache__"))
        lib = os.path.join(p, "lib", "libringshim.so")
        open(lib, "w").close()
        script = os.path.join(p, "bin", "ringshim")
        r = self.run_cmd(script, "run", "-v", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("LD_PRELOAD=" + lib, r.stderr)
        r = self.run_cmd(script, "ab", "--list-presets")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nginx", r.stdout)
        # a symlink to the command (e.g. from /usr/local/bin) resolves to the real place
        link = os.path.join(p, "ringshim-link")
        os.symlink(script, link)
        r = self.run_cmd(link, "run", "-v", "true")
        self.assertIn("LD_PRELOAD=" + lib, r.stderr)
        os.unlink(lib)
        r = self.run_cmd(script, "run", "true")
        self.assertEqual(r.returncode, 1)
        self.assertIn("library not found", r.stderr)

    def test_checkout_layout(self):
        # a command that does not exist: nothing ever runs with the real library
        r = self.run_cmd(os.path.join(SCRIPTS, "ringshim"), "run", "-v",
                         "no-such-command-ringshim-test")
        lib = os.path.join(REPO, "build", "libringshim.so")
        if os.path.isfile(lib):
            self.assertEqual(r.returncode, 127, r.stderr)
            self.assertIn("LD_PRELOAD=" + lib, r.stderr)
        else:
            self.assertEqual(r.returncode, 1)
            self.assertIn(lib, r.stderr)

    def test_package_missing(self):
        os.makedirs(os.path.join(self.prefix, "bin"))
        script = os.path.join(self.prefix, "bin", "ringshim")
        shutil.copy(os.path.join(SCRIPTS, "ringshim"), script)
        r = self.run_cmd(script, "--version")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot find the ringshim_lib package", r.stderr)


if __name__ == "__main__":
    unittest.main()
