"""Top-level command dispatch: `ringshim run ...`, `ringshim ab ...`, `ringshim stat ...`."""

import sys
from typing import List, Optional

from . import __version__, envvars, launcher

USAGE = """usage: ringshim run [OPTIONS] [--] CMD [ARGS...]
       ringshim ab (--preset NAME | --server CMD --ready PORT --load CMD) [OPTIONS]
       ringshim ab --list-presets
       ringshim stat [PID [--watch SECONDS]] [--json]
       ringshim --help | --version"""


def main_help() -> str:
    return "\n".join([
        USAGE,
        "",
        "ringshim serves an unmodified program's socket, pipe and file I/O from",
        "io_uring by preloading libringshim.so.",
        "",
        "Commands:",
        "  run   run a command with the library preloaded ('ringshim run --help')",
        "  ab    A/B benchmark a server with and without the library, alternating",
        "        the variants run by run, and write a report ('ringshim ab --help')",
        "  stat  show the live counters of the processes running with the library:",
        "        one line per process, or every counter of one PID, once or every N",
        "        seconds as rates; removes segments of processes that are gone",
        "        ('ringshim stat --help')",
        "",
        envvars.profiles_help(),
        "",
        envvars.help_text(),
        "",
        "See ringshim(1) for details.",
    ])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        sys.stderr.write(USAGE + "\n")
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-h", "--help", "help"):
        print(main_help())
        return 0
    if cmd in ("-V", "--version"):
        print("ringshim %s" % __version__)
        return 0
    if cmd == "run":
        return launcher.cmd_run(rest)
    if cmd == "ab":
        from . import harness
        return harness.cmd_ab(rest)
    if cmd == "stat":
        from . import shmstat
        return shmstat.cmd_stat(rest)
    if cmd.startswith("-"):
        launcher.err("unknown option '%s'" % cmd)
    else:
        launcher.err("unknown command '%s' (did you mean 'ringshim run %s'?)" % (cmd, cmd))
    sys.stderr.write("Try 'ringshim --help' for more information.\n")
    return 2
