"""Presets are data: they load, expand, render under the output directory,
use high loopback ports, and the harness never names them."""
import os
import re
import tempfile
import shutil
import unittest

from rstest_util import SCRIPTS
from ringshim_lib import presets


class PresetTest(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="ringshim-preset-test-")

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def test_all_expected_presets_exist(self):
        self.assertTrue({"demo-echo", "demo-legacy", "demo-threads", "demo-pingpong",
                         "demo-httpd", "nginx", "redis", "memcached", "haproxy",
                         "lighttpd"} <= set(presets.names()))

    def test_each_preset(self):
        for name in presets.names():
            with self.subTest(preset=name):
                p = presets.load(name)
                for port in p["ports"].values():
                    self.assertTrue(18000 <= int(port) <= 18999, port)
                values = presets.base_values(self.out, "/build")
                values.update(p["ports"])
                cmds = [p["server"], p["load"]] + list(p.get("reference", {}).values())
                cmds += [h["cmd"] for h in p.get("helpers", [])]
                cmds += [p.get("demo", {}).get("load", "")]
                for c in cmds:
                    self.assertEqual(presets.unknown_placeholders(c, values), [], c)
                    for word in presets.expand_cmd(c, values):
                        self.assertNotRegex(word, r"^/(etc|var)/", c)
                        if word.startswith("/") and not word.startswith("/build/"):
                            self.assertTrue(word.startswith(self.out), word)
                made = presets.setup_runtime(p, values)
                rendered = " ".join(cmds)
                for path in made:
                    if os.path.isfile(path) and path.endswith((".conf", ".cfg")):
                        with open(path) as f:
                            rendered += f.read()
                # the measured server is told its port, by command or config file
                self.assertTrue("{port}" in rendered or str(p["ports"]["port"]) in rendered)
                for path in made:
                    self.assertTrue(path.startswith(os.path.join(self.out, "runtime")), path)
                    if os.path.isfile(path) and path.endswith((".conf", ".cfg")):
                        with open(path) as f:
                            text = f.read()
                        body = "\n".join(x for x in text.splitlines()
                                         if not x.lstrip().startswith("#"))
                        self.assertNotRegex(body, r"\{(port|rt|out|user|group|backend_port)\}")
                        for abs_path in re.findall(r"(?<![\w.:])(/[\w./-]+)", body):
                            self.assertTrue(abs_path.startswith(self.out), (path, abs_path))
                        self.assertIn("127.0.0.1", body)
                self.assertIn(p.get("variants", "off,batch").split(",")[0], ("off",))

    def test_blob_size(self):
        p = presets.load("nginx")
        values = presets.base_values(self.out, "/build")
        values.update(p["ports"])
        presets.setup_runtime(p, values)
        self.assertEqual(os.path.getsize(os.path.join(self.out, "runtime", "www", "1k.bin")), 1024)

    def test_expand_keeps_config_braces(self):
        self.assertEqual(presets.expand("events { x; } {port} {other}", {"port": 5}),
                         "events { x; } 5 {other}")
        self.assertEqual(presets.expand_cmd("a '{out}/b c' {port}", {"out": "/o", "port": 1}),
                         ["a", "/o/b c", "1"])

    def test_harness_does_not_special_case_presets(self):
        lib = os.path.join(SCRIPTS, "ringshim_lib")
        for module in os.listdir(lib):
            if not module.endswith(".py"):
                continue
            with open(os.path.join(lib, module)) as f:
                code = f.read()
            for name in presets.names():
                self.assertNotRegex(code, r"[\"']%s[\"']" % re.escape(name),
                                    "%s names preset %s" % (module, name))

    def test_unknown_preset(self):
        with self.assertRaises(presets.PresetError):
            presets.load("../etc/passwd")
        with self.assertRaises(presets.PresetError):
            presets.load("no-such")


if __name__ == "__main__":
    unittest.main()
