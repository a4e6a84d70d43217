"""`ringshim ab`: A/B benchmark of a server with and without the library.

Runs are interleaved (round 1: every variant in order, round 2: again...)
so slow drifts of the machine hit every variant alike.  Every process the
harness starts runs in its own session and is stopped by PID/process
group, whatever happens (try/finally, signals turned into a clean stop)."""

import argparse
import datetime
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from . import chart, envvars, launcher, loadgen, paths, presets, procs, report, syscount, sysinfo

PROG = "ringshim ab"
VARIANT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*$")


class UsageError(Exception):
    """Bad command line: one line, exit 2."""


class Fatal(Exception):
    """Cannot go on: message (+ detail lines), everything stopped, exit 1."""

    def __init__(self, message: str, detail: Optional[List[str]] = None):
        super().__init__(message)
        self.detail = detail or []


class _ArgParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def say(msg: str) -> None:
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.flush()


EPILOG = """\
variants:
  off        the server as is, no LD_PRELOAD
  strict, batch, latency
             the server under the library with that profile's variables (the
             same environment as 'ringshim run --profile NAME'); RINGSHIM_*
             variables in your environment win over the profile, --env wins
             over everything
  NAME       a --reference NAME='CMD': another server command, run natively

Runs alternate: round 1 runs every variant in order, then round 2, ...
Commands are split like a shell would (shlex) but run without a shell;
{port} (and any preset placeholder such as {rt}, {out}, {build}) is expanded.

Output in --out DIR: report.md, report.json, chart.svg (+ chart.png), and
raw/run-I-VARIANT.{load.txt,server.log,stats.jsonl,syscalls.txt}.

Exit status: 0 all runs passed, 1 a run failed or the benchmark could not
run, 2 bad usage, 130 interrupted.  Presets: 'ringshim ab --list-presets'."""


def build_parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog=PROG, add_help=True, epilog=EPILOG,
                   formatter_class=argparse.RawDescriptionHelpFormatter,
                   description="A/B benchmark a server with and without libringshim.so.")
    p.add_argument("--preset", metavar="NAME", help="use a preset (options below override it)")
    p.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p.add_argument("--server", metavar="CMD", help="server command, e.g. 'nginx -c x.conf'")
    p.add_argument("--ready", metavar="PORT", type=_port,
                   help="TCP port on 127.0.0.1 the server accepts on when ready ({port})")
    p.add_argument("--load", metavar="CMD", help="load generator command")
    p.add_argument("--variants", metavar="LIST",
                   help="comma list of off, strict, batch, latency and reference names "
                        "(default: the preset's, else off,batch)")
    p.add_argument("--runs", metavar="N", type=_positive_int, help="rounds (default 5)")
    p.add_argument("--out", metavar="DIR", help="output directory (default ./ringshim-ab-DATE)")
    p.add_argument("--warmup", metavar="SECS", type=_nonneg_float,
                   help="run the load this long (output discarded) before each measured run")
    p.add_argument("--reference", metavar="NAME=CMD", action="append", default=[],
                   help="extra variant running another server command without the shim")
    p.add_argument("--helper", metavar="PORT:CMD", action="append", default=[],
                   help="extra process started (and ready on PORT) before the server in "
                        "every run, stopped after it, never preloaded")
    p.add_argument("--env", metavar="VAR=VAL", action="append", default=[],
                   help="set VAR for the measured server in every variant")
    p.add_argument("--parser", choices=sorted(loadgen.PARSERS) + ["auto"],
                   help="load output parser (default: from the load program's name)")
    p.add_argument("--syscalls", choices=("auto", "perf", "strace", "off"), default="auto",
                   help="how to count the server's system calls (default auto: perf, "
                        "else strace)")
    p.add_argument("--demo", action="store_true",
                   help="short run (the preset's demo settings, 3 runs) and print the table")
    p.add_argument("--stop-signal", metavar="SIG", type=_signal,
                   help="signal that asks the server to exit (default TERM; SIGKILL "
                        "follows after 5 s)")
    p.add_argument("--ready-timeout", metavar="SECS", type=_nonneg_float, default=20.0,
                   help="give up when the server does not accept within SECS (default 20)")
    p.add_argument("--load-timeout", metavar="SECS", type=_nonneg_float, default=300.0,
                   help="a load running longer than SECS fails the run (default 300)")
    p.add_argument("--no-install", action="store_true",
                   help="never install a preset's missing packages, just say so")
    return p


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("expected a TCP port 1..65535, got '%s'" % text)
    return int(text)


def _signal(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise argparse.ArgumentTypeError("unknown signal '%s'" % text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a positive integer, got '%s'" % text)
    return int(text)


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not v >= 0:
        raise argparse.ArgumentTypeError("expected a number of seconds >= 0, got '%s'" % text)
    return v


def list_presets() -> str:
    lines = []
    for name in presets.names():
        try:
            p = presets.load(name)
        except presets.PresetError as e:
            lines.append("%-14s (broken: %s)" % (name, e))
            continue
        refs = ", ".join(sorted(p.get("reference", {})))
        lines.append("%-14s port %-5s %s" % (name, p["ports"]["port"], p.get("description", "")))
        lines.append("%-14s variants %s%s; packages: %s" % (
            "", p.get("variants", "off,batch"), (" + reference " + refs) if refs else "",
            " ".join(p.get("packages", [])) or "-"))
    return "\n".join(lines)


def cmd_ab(argv: List[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.list_presets:
            print(list_presets())
            return 0
        ab = AB(args, argv)
    except (UsageError, presets.PresetError) as e:
        say(str(e))
        sys.stderr.write("Try 'ringshim ab --help' for more information.\n")
        return 2
    return ab.main()


# ------------------------------------------------------------------------

def missing_packages(pkgs: List[str]) -> List[str]:
    if not pkgs or not shutil.which("dpkg-query"):
        return []
    missing = []
    for pkg in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if r.returncode != 0 or b"install ok installed" not in r.stdout:
            missing.append(pkg)
    return missing


def read_shim_stats(path: str) -> Tuple[Optional[Dict], str]:
    """Sum the counters of every process line in a RINGSHIM_STATS file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None, "no stats file written (server killed, or library without stats?)"
    except OSError as e:
        return None, "stats file unreadable: %s" % e.strerror
    sums: Dict[str, float] = {}
    processes = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(obj, dict) or obj.get("ringshim") != 1 or \
                not isinstance(obj.get("counters"), dict):
            bad += 1
            continue
        for k, v in obj["counters"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                sums[k] = sums.get(k, 0) + v
        processes.append({k: obj.get(k) for k in ("pid", "ppid", "prog", "mode", "sqpoll")})
    if not processes:
        return None, "stats file has no valid line (%d malformed)" % bad
    note = "%d malformed line(s) ignored" % bad if bad else ""
    return {"counters": sums, "processes": processes, "malformed_lines": bad}, note


class AB:
    def __init__(self, args, argv: List[str]):
        self.args = args
        self.argv = argv
        self.live: List[object] = []
        self.records: List[Dict] = []
        self.notes: List[str] = []
        self.signal_received: Optional[int] = None
        self._configure()

    # ---------------------------------------------------------- config --

    def _configure(self) -> None:
        a = self.args
        preset = presets.load(a.preset) if a.preset else {}
        self.preset = preset
        demo = (preset.get("demo") or {}) if a.demo else {}

        def pick(cli, key, default):
            if cli is not None:
                return cli
            if key in demo:
                return demo[key]
            return preset.get(key, default)

        server = pick(a.server, "server", None)
        load = pick(a.load, "load", None)
        if not server:
            raise UsageError("--server CMD is required (or --preset NAME)")
        if not load:
            raise UsageError("--load CMD is required (or --preset NAME)")
        ports = dict(preset.get("ports") or {})
        if a.ready is not None:
            ports["port"] = a.ready
        if "port" not in ports:
            raise UsageError("--ready PORT is required (or --preset NAME)")
        self.runs = pick(a.runs, "runs", 3 if a.demo else 5)
        stop = pick(a.stop_signal, "stop_signal", "TERM")
        try:
            self.stop_signal = stop if isinstance(stop, int) else _signal(str(stop))
        except argparse.ArgumentTypeError as e:
            raise UsageError("preset stop_signal: %s" % e)
        self.warmup = float(pick(a.warmup, "warmup", 0))
        self.ready_timeout = a.ready_timeout
        self.load_timeout = a.load_timeout

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = os.path.abspath(a.out or "ringshim-ab-" + stamp)
        self.raw = os.path.join(self.out, "raw")
        self.values: Dict[str, object] = presets.base_values(self.out, paths.build_dir())
        for k, v in ports.items():
            self.values[k] = int(v)
        self.port = int(self.values["port"])

        def cmd(text: str, what: str) -> List[str]:
            unknown = presets.unknown_placeholders(text, self.values)
            if unknown:
                raise UsageError("%s: unknown placeholder %s (known: %s)" % (
                    what, ", ".join("{%s}" % u for u in unknown),
                    ", ".join("{%s}" % k for k in sorted(self.values))))
            argv = presets.expand_cmd(text, self.values)
            if not argv:
                raise UsageError("%s is empty" % what)
            return argv

        self.server_argv = cmd(server, "--server")
        self.load_argv = cmd(load, "--load")

        refs: Dict[str, str] = dict(preset.get("reference") or {})
        for spec in a.reference:
            name, sep, c = spec.partition("=")
            if not sep or not c.strip():
                raise UsageError("--reference expects NAME=CMD, got '%s'" % spec)
            refs[name.strip()] = c
        for name in refs:
            if not VARIANT_NAME.match(name) or name == "off" or name in envvars.PROFILES:
                raise UsageError("bad reference name '%s' (letters, digits, - and _; not off "
                                 "or a profile name)" % name)

        helpers = [dict(h) for h in preset.get("helpers") or []]
        for spec in a.helper:
            port, sep, c = spec.partition(":")
            if not sep or not port.isdigit() or not c.strip():
                raise UsageError("--helper expects PORT:CMD, got '%s'" % spec)
            helpers.append({"cmd": c, "ready": port})
        self.helpers = []
        for h in helpers:
            port_text = presets.expand(str(h.get("ready", "")), self.values)
            if not port_text.isdigit():
                raise UsageError("helper '%s': ready port '%s' is not a number"
                                 % (h.get("cmd"), port_text))
            hargv = cmd(h["cmd"], "helper")
            self.helpers.append({"argv": hargv, "port": int(port_text),
                                 "command_str": shlex.join(hargv)})

        self.extra_env: Dict[str, str] = {}
        for spec in a.env:
            name, sep, value = spec.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise UsageError("--env expects VAR=VAL, got '%s'" % spec)
            self.extra_env[name] = value

        listed = a.variants if a.variants is not None else preset.get("variants", "off,batch")
        self.variants_from_default = a.variants is None
        names = [n.strip() for n in listed.split(",") if n.strip()]
        if not names:
            raise UsageError("--variants: empty list")
        # A reference runs when listed, when given on this command line, or
        # (the preset's) when --variants was left to the preset's default;
        # an explicit --variants list leaves the preset's references out.
        cli_refs = {spec.partition("=")[0].strip() for spec in a.reference}
        for n in refs:
            if n not in names and (self.variants_from_default or n in cli_refs):
                names.append(n)
        refs = {n: c for n, c in refs.items() if n in names}
        seen = set()
        for n in names:
            if n in seen:
                raise UsageError("--variants: '%s' listed twice" % n)
            seen.add(n)
            if n != "off" and n not in envvars.PROFILES and n not in refs:
                raise UsageError("unknown variant '%s' (choose from off, %s%s)" % (
                    n, ", ".join(envvars.PROFILES),
                    "".join(", " + r for r in refs)))
        self.variant_names = names
        self.refs = {n: cmd(c, "--reference %s" % n) for n, c in refs.items()}

        parser = a.parser or preset.get("parser") or loadgen.detect(self.load_argv)
        if parser not in loadgen.PARSERS and parser != "auto":
            raise UsageError("unknown parser '%s'" % parser)
        self.parser = parser

    # ------------------------------------------------------------ setup --

    def _check_program(self, argv: List[str], what: str) -> None:
        prog = argv[0]
        if "/" in prog:
            ok = os.path.isfile(prog) and os.access(prog, os.X_OK)
        else:
            ok = shutil.which(prog) is not None
        if ok:
            return
        hint = ""
        build = str(self.values["build"])
        if prog.startswith(build + os.sep):
            hint = " (build it with 'make', or set RINGSHIM_BUILD_DIR)"
        elif self.preset.get("packages"):
            hint = " (the preset needs: %s)" % " ".join(self.preset["packages"])
        raise Fatal("%s: %s: not found%s" % (what, prog, hint))

    def _ensure_packages(self) -> None:
        pkgs = list(self.preset.get("packages") or [])
        missing = missing_packages(pkgs)
        if not missing:
            return
        script = paths.install_deps_script()
        if os.geteuid() == 0 and script and not self.args.no_install:
            say("installing missing packages: %s" % " ".join(missing))
            r = subprocess.run([script, "--packages"] + missing, stdin=subprocess.DEVNULL)
            if r.returncode == 0 and not missing_packages(missing):
                return
            raise Fatal("could not install %s" % " ".join(missing))
        sudo = "" if os.geteuid() == 0 else "sudo "
        raise Fatal("missing packages: %s — run: %sapt-get install %s"
                    % (" ".join(missing), sudo, " ".join(missing)))

    def _setup(self) -> None:
        os.makedirs(self.raw, exist_ok=True)
        os.makedirs(str(self.values["rt"]), exist_ok=True)
        if self.preset:
            self._ensure_packages()
            presets.setup_runtime(self.preset, self.values)
        self._check_program(self.server_argv, "server command")
        self._check_program(self.load_argv, "load command")
        for n, argv in self.refs.items():
            self._check_program(argv, "reference %s" % n)
        for h in self.helpers:
            self._check_program(h["argv"], "helper command")

        needs_lib = any(n in envvars.PROFILES for n in self.variant_names)
        self.lib, tried = paths.find_library()
        if needs_lib and not self.lib:
            raise Fatal("library not found: %s" % " or ".join(tried),
                        ["build it with 'make lib', point RINGSHIM_LIB at libringshim.so, "
                         "or run only --variants off"])

        # Variants that want SQPOLL: try it once.
        keep = []
        for n in self.variant_names:
            want = envvars.PROFILES.get(n, (None, {}))[1].get("RINGSHIM_SQPOLL")
            if want and want.lower() in envvars.BOOL_TRUE:
                ok, why = sysinfo.sqpoll_available()
                if not ok:
                    if self.variants_from_default:
                        self.notes.append("variant %s skipped: this kernel refuses SQPOLL rings "
                                          "(%s)" % (n, why))
                        say(self.notes[-1])
                        continue
                    self.notes.append("variant %s: this kernel refuses SQPOLL rings (%s); the "
                                      "library falls back without it" % (n, why))
                    say("warning: " + self.notes[-1])
            keep.append(n)
        self.variant_names = keep

        self.native_env = launcher.env_without_shim(dict(os.environ), self.lib)
        server_base = dict(os.environ)
        self.variants: List[Dict] = []
        for n in self.variant_names:
            v: Dict = {"name": n}
            if n in envvars.PROFILES:
                env, _sources, notes = launcher.shim_env(server_base, self.lib, n, self.extra_env)
                for note in notes:
                    if note not in self.notes:
                        self.notes.append("variant %s: %s" % (n, note))
                        say("warning: " + self.notes[-1])
                v.update(kind="profile", argv=self.server_argv, env=env)
            else:
                env = launcher.env_without_shim(server_base, self.lib)
                env.update(self.extra_env)
                v.update(kind="reference" if n in self.refs else "off",
                         argv=self.refs.get(n, self.server_argv), env=env)
            v["command_str"] = shlex.join(v["argv"])
            shown = {k: val for k, val in v["env"].items()
                     if (k.startswith("RINGSHIM_") or k == "LD_PRELOAD" or k in self.extra_env)
                     and os.environ.get(k) != val}
            if v["kind"] == "profile":
                shown["RINGSHIM_STATS"] = os.path.join(self.raw, "run-N-%s.stats.jsonl" % n)
            v["env_shown"] = shown
            self.variants.append(v)
        if not self.variants:
            raise Fatal("no variant left to run")
        self.baseline = "off" if "off" in self.variant_names else self.variant_names[0]

        self.sys_method, self.sys_note = syscount.probe(self.args.syscalls)
        if not self.sys_method:
            say("system calls will not be counted: %s" % self.sys_note)

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 16
        want = min(want, 1 << 16)
        if soft != resource.RLIM_INFINITY and soft < want:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            except (ValueError, OSError):
                pass

    # -------------------------------------------------------- processes --

    def _start(self, argv: List[str], env: Dict[str, str], log: str, name: str) -> procs.Proc:
        p = procs.Proc(argv, env, log, name=name)
        self.live.append(p)
        try:
            p.start()
        except OSError as e:
            self.live.remove(p)
            raise Fatal("%s: cannot start %s: %s" % (name, argv[0], e.strerror or e))
        return p

    def _stop(self, p: procs.Proc, sig: int = signal.SIGTERM) -> Optional[int]:
        rc = p.stop(grace=5.0, sig=sig)
        if p in self.live:
            self.live.remove(p)
        return rc

    def _stop_everything(self) -> None:
        for obj in reversed(list(self.live)):
            try:
                if isinstance(obj, syscount.Counter):
                    obj.kill()
                else:
                    obj.stop(grace=5.0)
            except Exception as e:  # keep stopping the others
                say("warning: while stopping: %s" % e)
        self.live.clear()

    def _ports(self) -> List[int]:
        return [self.port] + [h["port"] for h in self.helpers]

    def _ensure_ports_free(self, after_stop: bool) -> None:
        for port in self._ports():
            if not procs.wait_port_free(port, 5.0):
                if after_stop:
                    raise Fatal("port %d is still in use after the server was stopped; "
                                "something outlived it — stopping here" % port)
                raise Fatal("port %d on 127.0.0.1 is already in use by another program; "
                            "pick another with --ready (or stop that program)" % port)

    # -------------------------------------------------------------- run --

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.out)

    def run_one(self, i: int, v: Dict) -> Dict:
        tag = "run-%d-%s" % (i, v["name"])
        base = os.path.join(self.raw, tag)
        load_file, server_log = base + ".load.txt", base + ".server.log"
        stats_file = base + ".stats.jsonl"
        for stale in (stats_file, base + ".syscalls.txt", base + ".syscalls.txt.err",
                      base + ".warmup.txt"):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        rec: Dict = {"run": i, "variant": v["name"], "ok": False, "reason": None,
                     "load_file": self._rel(load_file), "server_log": self._rel(server_log)}
        env = dict(v["env"])
        if v["kind"] == "profile":
            env["RINGSHIM_STATS"] = stats_file
            rec["stats_file"] = self._rel(stats_file)

        self._ensure_ports_free(after_stop=False)
        started = []
        for n, h in enumerate(self.helpers, 1):
            hp = self._start(h["argv"], self.native_env, "%s.helper-%d.log" % (base, n),
                             "helper %s" % os.path.basename(h["argv"][0]))
            started.append(hp)
            ok, why = procs.wait_ready(h["port"], [hp], self.ready_timeout)
            if not ok:
                raise Fatal("helper `%s` never became ready: %s" % (h["command_str"], why),
                            ["last lines of %s:" % hp.log_path] +
                            ["  " + x for x in procs.tail(hp.log_path)])
        server = self._start(v["argv"], env, server_log, "server")
        ok, why = procs.wait_ready(self.port, [server] + started, self.ready_timeout)
        if not ok:
            raise Fatal("server `%s` (variant %s) never became ready: %s"
                        % (v["command_str"], v["name"], why),
                        ["last lines of %s:" % server_log] +
                        ["  " + x for x in procs.tail(server_log)])

        if self.warmup > 0:
            wp = self._start(self.load_argv, self.native_env, base + ".warmup.txt", "warm-up")
            procs.run_with_timeout(wp, self.warmup)
            self.live.remove(wp)

        sys_count, sys_reason = None, "not counted (%s)" % self.sys_note
        counter = None
        if self.sys_method:
            try:
                counter = syscount.Counter(self.sys_method, sorted(server.track()),
                                           base + ".syscalls.txt")
                self.live.append(counter)
                counter.settle()
            except OSError as e:
                sys_reason = "%s could not start: %s" % (self.sys_method, e)

        before = procs.cpu_ticks(server.track())
        t0 = time.monotonic()
        lp = self._start(self.load_argv, self.native_env, load_file, "load")
        load_rc, timed_out = procs.run_with_timeout(lp, self.load_timeout)
        self.live.remove(lp)
        load_secs = time.monotonic() - t0
        after = procs.cpu_ticks(server.track())
        server_rc_during = server.poll()
        if counter:
            sys_count, why = counter.stop()
            self.live.remove(counter)
            if sys_count is None:
                sys_reason = why

        server_rc = self._stop(server, self.stop_signal)
        for hp in reversed(started):
            self._stop(hp)
        self._ensure_ports_free(after_stop=True)

        # ---- results
        rec["load_secs"] = round(load_secs, 3)
        rec["load_status"] = load_rc
        rec["server_status"] = server_rc
        rec["server_killed"] = server.killed
        rec["cpu_s"] = procs.ticks_to_seconds(after - before)
        reasons = []
        try:
            with open(load_file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        res: Dict = {}
        try:
            res = loadgen.parse(text, self.parser, self.load_argv)
        except loadgen.ParseError as e:
            reasons.append("cannot parse the load output: %s" % e)
        if timed_out:
            reasons.insert(0, "load generator still running after %g s (stopped)"
                           % self.load_timeout)
        elif load_rc != 0:
            last = [x for x in text.splitlines() if x.strip()][-1:]
            reasons.insert(0, "load generator exited with status %s%s" % (
                procs.describe_status(load_rc), (": " + last[0].strip()[:200]) if last else ""))
        if res.get("errors"):
            reasons.append("load generator reported %d errors" % res["errors"])
        if server_rc_during is not None:
            reasons.append("server exited during the load (status %s)"
                           % procs.describe_status(server_rc_during))
        for k in ("rps", "p50_us", "p99_us", "requests", "errors", "secs", "parser",
                  "latency_note"):
            if k in res:
                rec[k] = res[k]
        requests = res.get("requests")
        if not requests and res.get("rps"):
            requests = res["rps"] * (res.get("secs") or load_secs)
            rec["requests_estimated"] = True
            rec["requests"] = int(requests)
        if requests:
            rec["cpu_us_per_req"] = rec["cpu_s"] * 1e6 / requests
        rec["syscalls"] = sys_count
        rec["syscalls_method"] = self.sys_method if sys_count is not None else None
        if sys_count is None:
            rec["syscalls_unavailable"] = sys_reason
        elif requests:
            rec["syscalls_per_req"] = sys_count / requests
        if v["kind"] == "profile":
            shim, note = read_shim_stats(stats_file)
            rec["shim"] = shim
            if shim is None and not os.path.exists(stats_file):
                note = "no stats file: the server exited with status %s%s" % (
                    procs.describe_status(server_rc),
                    " after SIGKILL" if server.killed else
                    " (a process killed by a signal, or one that rewrites its environment "
                    "for its process title, writes none)")
            if note:
                rec["shim_note"] = note
            if shim and requests and "enter" in shim["counters"]:
                rec["enter_per_req"] = shim["counters"]["enter"] / requests
        rec["ok"] = not reasons
        rec["reason"] = "; ".join(reasons) or None
        return rec

    # ------------------------------------------------------------- main --

    def _on_signal(self, signum, frame):
        if self.signal_received is None:
            self.signal_received = signum
        raise KeyboardInterrupt

    def main(self) -> int:
        old = {}
        for s in (signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, self._on_signal)
        aborted = None
        status = 0
        try:
            try:
                self._setup()
                total = self.runs * len(self.variants)
                say("%d runs x %d variants (%s), output in %s" % (
                    self.runs, len(self.variants), ", ".join(self.variant_names), self.out))
                k = 0
                for i in range(1, self.runs + 1):
                    for v in self.variants:
                        k += 1
                        rec = self.run_one(i, v)
                        self.records.append(rec)
                        self._progress(k, total, rec)
            finally:
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(s, signal.SIG_IGN)
                self._stop_everything()
        except KeyboardInterrupt:
            sig = self.signal_received or signal.SIGINT
            aborted = "interrupted by %s" % signal.Signals(sig).name
            say("%s: everything started was stopped" % aborted)
            status = 128 + sig
        except Fatal as e:
            aborted = str(e)
            say(str(e))
            for line in e.detail:
                sys.stderr.write("  %s\n" % line)
            status = 1
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.records:
            self._write_report(aborted)
        if status == 0 and any(not r["ok"] for r in self.records):
            status = 1
        return status

    def _progress(self, k: int, total: int, r: Dict) -> None:
        head = "[%d/%d] run %d %-8s" % (k, total, r["run"], r["variant"])
        if r.get("rps"):
            parts = ["%s req/s" % report.fmt_num(r["rps"])]
            if r.get("p99_us") is not None:
                parts.append("p99 %s µs" % report.fmt_num(r["p99_us"]))
            if r.get("cpu_us_per_req") is not None:
                parts.append("CPU %s µs/req" % report.fmt_num(r["cpu_us_per_req"]))
            if r.get("syscalls_per_req") is not None:
                parts.append("%s syscalls/req" % report.fmt_num(r["syscalls_per_req"]))
            if r.get("enter_per_req") is not None:
                parts.append("%s enters/req" % report.fmt_num(r["enter_per_req"]))
        else:
            parts = []
        line = head + " " + ", ".join(parts)
        if not r["ok"]:
            line += "  FAILED: %s" % r["reason"]
        say(line)

    def _write_report(self, aborted: Optional[str]) -> None:
        variants_done = [v for v in self.variants
                         if any(r["variant"] == v["name"] for r in self.records)]
        baseline = self.baseline if any(v["name"] == self.baseline
                                         for v in variants_done) else None
        summary = report.summarize(self.records, variants_done, baseline)
        notes = list(self.notes)
        methods = {r.get("syscalls_method") for r in self.records if r.get("syscalls_method")}
        if "strace" in methods:
            notes.append("System calls were counted with strace attached: it slows the "
                         "server down a lot, so throughput and CPU of these runs are not "
                         "comparable with runs without it (--syscalls off).")
        unavailable = sorted({r["syscalls_unavailable"] for r in self.records
                              if r.get("syscalls_unavailable")})
        for u in unavailable:
            notes.append("syscalls unavailable for some runs: %s" % u)
        if any(r.get("requests_estimated") for r in self.records):
            notes.append("The load generator did not print a request count: requests were "
                         "estimated as throughput × duration.")
        lat = sorted({r["latency_note"] for r in self.records if r.get("latency_note")})
        for n in lat:
            notes.append("Latency percentiles " + n + ".")
        shim_notes = sorted({"%s: %s" % (r["variant"], r["shim_note"]) for r in self.records
                             if r.get("shim_note")})
        for n in shim_notes:
            notes.append("shim stats " + n)
        if any(r.get("server_killed") for r in self.records):
            notes.append("Some servers did not exit within 5 s of SIGTERM and were killed "
                         "(their shim stats are missing).")
        label = {"perf": "perf stat -e raw_syscalls:sys_enter, attached to every server "
                         "process for the load's duration",
                 "strace": "strace -c -f, attached (slows the server down)"}
        cfg = {
            "preset": self.preset.get("name"),
            "runs": self.runs,
            "warmup": self.warmup,
            "baseline": baseline,
            "variants": [{"name": v["name"], "kind": v["kind"], "command": v["argv"],
                          "command_str": v["command_str"], "env": v["env_shown"]}
                         for v in self.variants],
            "helpers": [{"command": h["argv"], "command_str": h["command_str"],
                         "port": h["port"]} for h in self.helpers],
            "server_command": shlex.join(self.server_argv),
            "load_command": shlex.join(self.load_argv),
            "ready_port": self.port,
            "stop_signal": signal.Signals(self.stop_signal).name,
            "parser": self.parser if self.parser != "auto" else "auto (%s)" % (
                ", ".join(sorted({r["parser"] for r in self.records if r.get("parser")}))
                or "nothing recognised"),
            "library": self.lib,
            "library_sha256": sysinfo.file_digest(self.lib),
            "syscalls": {"method": self.sys_method, "note": self.sys_note,
                         "method_label": label.get(self.sys_method or "", "not counted")},
            "extra_env": self.extra_env,
        }
        data = {
            "ringshim_ab": 1,
            "host": sysinfo.host_info(),
            "command_line": shlex.join([sys.argv[0]] + (sys.argv[1:] if sys.argv[1:2] == ["ab"]
                                                         else ["ab"] + self.argv)),
            "cwd": os.getcwd(),
            "aborted": aborted,
            "config": cfg,
            "summary": summary,
            "runs": self.records,
            "notes": notes,
            "raw_dir": self._rel(self.raw),
            "chart": None,
        }
        title = "ringshim ab: %s" % (self.preset.get("name") or os.path.basename(
            self.server_argv[0]))
        made, chart_notes = chart.render(self.out, summary, title)
        data["notes"] += chart_notes
        for n in chart_notes:
            say(n)
        if "svg" in made:
            data["chart"] = os.path.basename(made["svg"])
        data["charts"] = {k: os.path.basename(p) for k, p in made.items()}
        report.write_json(os.path.join(self.out, "report.json"), data)
        md = report.render_markdown(data)
        with open(os.path.join(self.out, "report.md"), "w") as f:
            f.write(md)
        print(report.table_markdown(summary, data["config"]["baseline"]))
        print()
        print("report: %s" % os.path.join(self.out, "report.md"))
        for k in ("svg", "png"):
            if k in made:
                print("chart:  %s" % made[k])
        sys.stdout.flush()
