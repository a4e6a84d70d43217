"""`ringshim run`: preload the library into a command, onload-style.

The environment is built by shim_env(), which the A/B harness uses too, so
`ringshim run --profile batch CMD` and the harness's `batch` variant start
the server with the same variables."""

import os
import re
import sys
from typing import Dict, List, Optional, Tuple

from . import envvars, paths

PROG = "ringshim"


def _split_preload(value: Optional[str]) -> List[str]:
    return [p for p in re.split(r"[ :]+", value or "") if p]


def is_ringshim_lib(entry: str, lib: Optional[str] = None) -> bool:
    if lib and os.path.abspath(entry) == os.path.abspath(lib):
        return True
    return os.path.basename(entry) == "libringshim.so"


def preload_with(lib: str, existing: Optional[str]) -> str:
    """LD_PRELOAD with LIB first and the existing entries (minus LIB) after it."""
    rest = [p for p in _split_preload(existing) if not is_ringshim_lib(p, lib)]
    return ":".join([lib] + rest)


def preload_without(lib: Optional[str], existing: Optional[str]) -> Optional[str]:
    """LD_PRELOAD with ringshim removed; None when nothing is left."""
    rest = [p for p in _split_preload(existing) if not is_ringshim_lib(p, lib)]
    return ":".join(rest) if rest else None


def env_without_shim(base: Dict[str, str], lib: Optional[str] = None) -> Dict[str, str]:
    """An environment that runs a program natively (harness `off`, load generators)."""
    env = dict(base)
    pre = preload_without(lib, env.get("LD_PRELOAD"))
    if pre is None:
        env.pop("LD_PRELOAD", None)
    else:
        env["LD_PRELOAD"] = pre
    return env


def shim_env(base: Dict[str, str], lib: str, profile: Optional[str] = None,
             options: Optional[Dict[str, str]] = None
             ) -> Tuple[Dict[str, str], Dict[str, str], List[str]]:
    """Environment for running under the shim.

    Precedence: profile < variables already in BASE < OPTIONS (explicit
    command-line options such as --stats).  Returns (env, sources, notes):
    sources maps each RINGSHIM_* variable set to where it came from; notes
    are human-readable remarks about overridden values."""
    env = dict(base)
    sources: Dict[str, str] = {}
    notes: List[str] = []
    for name in base:
        if name.startswith("RINGSHIM_"):
            sources[name] = "environment"
    if profile:
        for name, value in envvars.PROFILES[profile][1].items():
            if name in base:
                if base[name] != value:
                    notes.append("%s=%s from the environment wins over profile %s's %s=%s"
                                 % (name, base[name], profile, name, value))
            else:
                env[name] = value
                sources[name] = "profile " + profile
    for name, value in (options or {}).items():
        if name in base and base[name] != value:
            notes.append("option sets %s=%s (environment had %s)" % (name, value, base[name]))
        env[name] = value
        sources[name] = "option"
    env["LD_PRELOAD"] = preload_with(lib, base.get("LD_PRELOAD"))
    return env, sources, notes


def value_warnings(env: Dict[str, str]) -> List[str]:
    out = []
    for name, value in sorted(env.items()):
        if not name.startswith("RINGSHIM_"):
            continue
        problem = envvars.check_value(name, value)
        if problem:
            out.append("%s=%s: %s (the library will use its default)" % (name, value, problem))
    return out


def settings_lines(env: Dict[str, str], sources: Dict[str, str]) -> List[str]:
    """-v output: LD_PRELOAD and every RINGSHIM_* variable, set or at its default."""
    lines = ["LD_PRELOAD=%s" % env.get("LD_PRELOAD", "")]
    width = max(len(v.name) for v in envvars.ENV_VARS) + 1
    for var in envvars.ENV_VARS:
        if var.name in env:
            lines.append("%-*s= %-12s (%s)" % (width, var.name, env[var.name],
                                              sources.get(var.name, "environment")))
        else:
            lines.append("%-*s  unset        (default: %s)" % (width, var.name, var.default))
    for var in envvars.TOOL_VARS:
        if var.name in env:
            lines.append("%-*s= %-12s (read by the ringshim command)" % (width, var.name, env[var.name]))
    known = set(envvars.ENV_BY_NAME) | {v.name for v in envvars.TOOL_VARS}
    for name in sorted(env):
        if name.startswith("RINGSHIM_") and name not in known:
            lines.append("%-*s= %-12s (unknown to this ringshim command: typo?)"
                         % (width, name, env[name]))
    return lines


RUN_USAGE = "usage: ringshim run [--profile strict|batch|latency] [--sqpoll] [--stats[=FILE]]\n" \
            "                    [--log LEVEL] [-v] [--] CMD [ARGS...]"


def run_help() -> str:
    return "\n".join([
        RUN_USAGE,
        "",
        "Run CMD with libringshim.so preloaded, so its socket, pipe and file I/O is",
        "served from io_uring.  The library is put first in LD_PRELOAD (existing",
        "entries are kept after it), then CMD replaces this process: its exit status",
        "and signals are CMD's own.",
        "",
        "Options:",
        "  -p, --profile NAME  set the profile's variables (see below); a variable",
        "                      already in your environment wins over the profile",
        "  --sqpoll            RINGSHIM_SQPOLL=1",
        "  --stats             RINGSHIM_STATS=1: counter summary on stderr at exit",
        "  --stats=FILE        RINGSHIM_STATS=FILE: one JSON line per process at exit",
        "  --log LEVEL         RINGSHIM_LOG=LEVEL (quiet, warn, info, debug)",
        "  -v, --verbose       print the effective settings to stderr before running",
        "  -h, --help          this help",
        "",
        envvars.profiles_help(),
        "",
        "Exit status: CMD's; 127 if CMD is not found, 126 if it cannot be executed,",
        "1 if the library is missing, 2 for a bad option.",
        "",
        envvars.help_text(),
    ])


class UsageError(Exception):
    pass


def parse_run_args(argv: List[str]) -> Tuple[dict, List[str]]:
    opts = {"profile": None, "sqpoll": False, "stats": None, "log": None,
            "verbose": False, "help": False}
    i = 0

    def value_of(opt: str) -> str:
        nonlocal i
        if i + 1 >= len(argv):
            raise UsageError("option %s needs a value" % opt)
        i += 1
        return argv[i]

    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a in ("-h", "--help"):
            opts["help"] = True
        elif a in ("-v", "--verbose"):
            opts["verbose"] = True
        elif a == "--sqpoll":
            opts["sqpoll"] = True
        elif a == "--stats":
            opts["stats"] = "1"
        elif a.startswith("--stats="):
            opts["stats"] = a[len("--stats="):]
            if not opts["stats"]:
                raise UsageError("--stats=FILE needs a file name")
        elif a in ("-p", "--profile"):
            opts["profile"] = value_of(a)
        elif a.startswith("--profile="):
            opts["profile"] = a[len("--profile="):]
        elif a == "--log":
            opts["log"] = value_of(a)
        elif a.startswith("--log="):
            opts["log"] = a[len("--log="):]
        else:
            raise UsageError("unknown option '%s'" % a)
        i += 1
    if opts["profile"] is not None and opts["profile"] not in envvars.PROFILES:
        raise UsageError("unknown profile '%s' (choose from %s)"
                         % (opts["profile"], ", ".join(envvars.PROFILES)))
    if opts["log"] is not None and opts["log"].lower() not in envvars.LOG_LEVELS:
        raise UsageError("--log: unknown level '%s' (choose from %s)"
                         % (opts["log"], ", ".join(envvars.LOG_LEVELS)))
    return opts, argv[i:]


def err(msg: str) -> None:
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.flush()


def cmd_run(argv: List[str]) -> int:
    try:
        opts, command = parse_run_args(argv)
    except UsageError as e:
        err("run: " + str(e))
        sys.stderr.write("Try 'ringshim run --help' for more information.\n")
        return 2
    if opts["help"]:
        print(run_help())
        return 0
    if not command:
        err("run: no command given")
        sys.stderr.write("Try 'ringshim run --help' for more information.\n")
        return 2

    lib, tried = paths.find_library()
    if lib is None:
        err("library not found: %s" % " or ".join(tried))
        sys.stderr.write("  build it with 'make lib', or point RINGSHIM_LIB at libringshim.so\n")
        return 1

    options = {}
    if opts["sqpoll"]:
        options["RINGSHIM_SQPOLL"] = "1"
    if opts["stats"] is not None:
        options["RINGSHIM_STATS"] = opts["stats"]
    if opts["log"] is not None:
        options["RINGSHIM_LOG"] = opts["log"]
    env, sources, notes = shim_env(dict(os.environ), lib, opts["profile"], options)

    for w in value_warnings(env):
        err("warning: " + w)
    if opts["verbose"]:
        for n in notes:
            err("note: " + n)
        err("profile: %s" % (opts["profile"] or "(none: library defaults)"))
        for line in settings_lines(env, sources):
            err("  " + line)
        err("exec: %s" % " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    return exec_command(command, env)


def exec_command(command: List[str], env: Dict[str, str]) -> int:
    """Replace this process with COMMAND; only returns (127/126) on failure."""
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        if "/" in command[0]:
            err("%s: No such file or directory" % command[0])
        else:
            err("%s: command not found" % command[0])
        return 127
    except PermissionError:
        err("%s: Permission denied" % command[0])
        return 126
    except OSError as e:
        err("%s: cannot execute: %s" % (command[0], e.strerror or e))
        return 126
    return 126  # not reached
