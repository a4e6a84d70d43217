"""The one table of the library's environment variables and the launcher
profiles.  `ringshim --help`, `ringshim run -v` and the validation of
values all read it; docs/ringshim.1 is written by hand from the same
content (tests/scripts/test_launcher.py checks every name appears there).

Ranges mirror shim/config.c: a value the library would reject is warned
about by the launcher too, but the library's own check is the one that
counts (it falls back to the default and warns)."""

import re
from dataclasses import dataclass
from typing import Callable, Optional

BOOL_TRUE = ("1", "yes", "true", "on")
BOOL_FALSE = ("0", "no", "false", "off", "")
FD_KINDS = ("all", "none", "sockets", "tcp", "udp", "unix", "pipes", "files")
LOG_LEVELS = ("quiet", "warn", "info", "debug")
MODES = ("strict", "batch")


def parse_size(text: str) -> Optional[int]:
    """'64K' -> 65536; plain digits, K/M/G suffix with optional B.  None if bad."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)[bB]?\s*", text)
    if not m:
        return None
    shift = {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    return int(m.group(1)) << shift


def _bool(v: str) -> Optional[str]:
    if v.strip().lower() in BOOL_TRUE + BOOL_FALSE:
        return None
    return "expected 0 or 1"


def _uint(lo: int, hi: int) -> Callable[[str], Optional[str]]:
    def check(v: str) -> Optional[str]:
        if not v.strip().isdigit() or not lo <= int(v) <= hi:
            return "expected an integer %d..%d" % (lo, hi)
        return None
    return check


def _size(lo: int, hi: int) -> Callable[[str], Optional[str]]:
    def check(v: str) -> Optional[str]:
        n = parse_size(v)
        if n is None or not lo <= n <= hi:
            return "expected bytes %d..%d (K/M/G suffixes allowed)" % (lo, hi)
        return None
    return check


def _choice(choices) -> Callable[[str], Optional[str]]:
    def check(v: str) -> Optional[str]:
        if v.strip().lower() not in choices:
            return "expected one of " + ", ".join(choices)
        return None
    return check


def _fds(v: str) -> Optional[str]:
    parts = [p.strip().lower() for p in v.split(",")]
    if not parts or any(p not in FD_KINDS for p in parts):
        return "expected a comma list of " + ", ".join(FD_KINDS)
    return None


def _any(v: str) -> Optional[str]:
    return None


@dataclass(frozen=True)
class EnvVar:
    name: str
    values: str        # accepted values, for help text
    default: str       # default, for help text
    summary: str       # one-line description
    check: Callable[[str], Optional[str]] = _any


GiB = 1 << 30

ENV_VARS = (
    EnvVar("RINGSHIM_DISABLE", "0|1", "0",
           "1 turns the shim off entirely: every call goes straight to libc.", _bool),
    EnvVar("RINGSHIM_MODE", "strict|batch", "batch",
           "strict: each call completes on the ring before it returns, exactly like "
           "the system call; batch: write-behind, read-ahead and batched submissions.",
           _choice(MODES)),
    EnvVar("RINGSHIM_FDS", "comma list of all, sockets, tcp, udp, unix, pipes, files, none",
           "all (batch: sockets,pipes)", "Which kinds of file descriptor are served by the "
           "ring; others pass through to libc. Batch mode leaves regular files to libc "
           "unless asked: a file call through the ring costs an enter with nothing to batch.",
           _fds),
    EnvVar("RINGSHIM_RING_ENTRIES", "N (8..32768)", "256",
           "Submission queue entries of each per-thread ring.", _uint(8, 32768)),
    EnvVar("RINGSHIM_MAX_RINGS", "N (1..65536)", "64",
           "Most rings per process; further threads pass their calls through to libc.",
           _uint(1, 65536)),
    EnvVar("RINGSHIM_SQPOLL", "0|1", "0",
           "1 creates rings with a kernel submission-polling thread (IORING_SETUP_SQPOLL).",
           _bool),
    EnvVar("RINGSHIM_SQPOLL_THREADS", "N (1..64)", "1",
           "SQ polling threads per process (1: all rings of a process share one).",
           _uint(1, 64)),
    EnvVar("RINGSHIM_SQPOLL_IDLE_MS", "N (0..60000)", "50",
           "Milliseconds an idle SQ polling thread spins before it sleeps.",
           _uint(0, 60000)),
    EnvVar("RINGSHIM_SQPOLL_CPU", "N (0..4095)", "unpinned",
           "Pin the SQ polling thread to this CPU.", _uint(0, 4095)),
    EnvVar("RINGSHIM_BUSY_POLL_US", "N (0..1000000)", "0",
           "Spin on the completion queue up to N microseconds before sleeping.",
           _uint(0, 1000000)),
    EnvVar("RINGSHIM_WB_FD_MAX", "BYTES (4K..1G)", "262144",
           "Write-behind bytes pending per fd (batch mode); K/M/G suffixes.",
           _size(4096, GiB)),
    EnvVar("RINGSHIM_WB_MAX", "BYTES (64K..16G)", "67108864",
           "Write-behind bytes pending per process (batch mode); K/M/G suffixes.",
           _size(65536, 16 * GiB)),
    EnvVar("RINGSHIM_STASH_FD_MAX", "BYTES (4K..1G)", "262144",
           "Received bytes held per fd before receiving is paused; K/M/G suffixes.",
           _size(4096, GiB)),
    EnvVar("RINGSHIM_ACCEPT_QUEUE", "N (1..1024)", "4",
           "Connections accepted ahead per listening socket.", _uint(1, 1024)),
    EnvVar("RINGSHIM_FLUSH_BYTES", "BYTES (512..1G)", "65536",
           "Write-behind flush threshold in bytes; K/M/G suffixes.", _size(512, GiB)),
    EnvVar("RINGSHIM_FLUSH_US", "N (0..1000000)", "200",
           "Write-behind flush threshold in microseconds.", _uint(0, 1000000)),
    EnvVar("RINGSHIM_STATS", "0|1|FILE", "0",
           "Counter summary at exit: 1 = one line on stderr, FILE = append one JSON "
           "line per process to FILE."),
    EnvVar("RINGSHIM_LOG", "quiet|warn|info|debug", "warn",
           "Log level of the library's messages.", _choice(LOG_LEVELS)),
    EnvVar("RINGSHIM_LOG_FILE", "PATH", "stderr",
           "Write the library's messages to PATH instead of stderr."),
    EnvVar("RINGSHIM_FAULT", "spec", "off",
           "Fault injection for tests (see the test suite); off unless set."),
)

# Variables read by the ringshim command itself (not by the library).
TOOL_VARS = (
    EnvVar("RINGSHIM_LIB", "PATH", "../build/libringshim.so or ../lib/libringshim.so",
           "Library to preload instead of the one found next to the ringshim command."),
    EnvVar("RINGSHIM_BUILD_DIR", "DIR", "../build next to the command",
           "Where the demo presets find build/demo/* programs ({build})."),
    EnvVar("RINGSHIM_SHM_DIR", "DIR", "/dev/shm",
           "Where `ringshim stat` looks for the counter segments (for tests: the "
           "library always creates them in /dev/shm)."),
)

ENV_BY_NAME = {v.name: v for v in ENV_VARS}

# Launcher profiles: name -> (description, variables).
PROFILES = {
    "strict": ("every call completes on the ring before it returns",
               {"RINGSHIM_MODE": "strict"}),
    "batch": ("write-behind, read-ahead and batched submissions",
              {"RINGSHIM_MODE": "batch"}),
    "latency": ("batch plus a kernel SQ polling thread and completion busy-polling",
                {"RINGSHIM_MODE": "batch", "RINGSHIM_SQPOLL": "1",
                 "RINGSHIM_BUSY_POLL_US": "50"}),
}


def check_value(name: str, value: str) -> Optional[str]:
    """Problem with NAME=VALUE as a string, or None (also None for unknown names)."""
    var = ENV_BY_NAME.get(name)
    return var.check(value) if var else None


def _wrap(text: str, width: int, indent: str) -> str:
    import textwrap
    return textwrap.fill(text, width=width, initial_indent=indent,
                         subsequent_indent=indent)


def help_text(width: int = 79) -> str:
    """The environment section of --help, from the table."""
    out = ["Library environment variables (set by profiles, or by you: yours win):"]
    for v in ENV_VARS:
        out.append("  %s=%s   (default: %s)" % (v.name, v.values, v.default))
        out.append(_wrap(v.summary, width, "      "))
    out.append("Variables read by the ringshim command:")
    for v in TOOL_VARS:
        out.append("  %s=%s   (default: %s)" % (v.name, v.values, v.default))
        out.append(_wrap(v.summary, width, "      "))
    return "\n".join(out)


def profiles_help() -> str:
    lines = ["Profiles:"]
    for name, (desc, env) in PROFILES.items():
        settings = " ".join("%s=%s" % kv for kv in env.items())
        lines.append("  %-8s %s" % (name, settings))
        lines.append("           (%s)" % desc)
    return "\n".join(lines)
