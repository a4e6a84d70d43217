"""`ringshim stat`: the live counters of processes running with the library.

Every process running with libringshim.so publishes its counters in a
shared-memory segment, /dev/shm/ringshim.PID (shim/stats.c).  The segment
describes itself: the fixed header gives the sizes and the offset of every
part, and the counter and gauge names are stored in it, so this reader knows
nothing of the layout beyond that header (docs/observability.md has it).

Totals are the retired block (threads that exited) plus every live thread's
block.  The reader takes no lock: a value may be a few increments stale, and
a thread exiting during a read can count twice for one sample; rates clamp
such negative differences to zero.

RINGSHIM_SHM_DIR points the command at another directory (for tests: the
library itself always uses /dev/shm)."""

import json
import os
import re
import stat as statmod
import struct
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import procs

PROG = "ringshim"
SHM_DIR_VAR = "RINGSHIM_SHM_DIR"
DEFAULT_SHM_DIR = "/dev/shm"
MAGIC = b"RINGSHM1"
# magic, header_size, nslots, pid, ncounters, ngauges, block_size, start_time,
# names_offset, gauges_offset, used_offset, retired_offset, slots_offset,
# prog[64], mode[16].  140 bytes; start_time is at offset 32, no padding.
HEADER = struct.Struct("<8sIIiIIIQIIIII64s16s")
SEGMENT_RE = re.compile(r"ringshim\.([0-9]+)$")
NAME_RE = re.compile(r"[A-Za-z0-9_]+$")
# Sanity limits: far above what the library uses (60 counters, 1024 slots,
# about 0.5 MiB), low enough that a corrupt header cannot make us read much.
MAX_NAMES = 4096
MAX_SLOTS = 1 << 16
MAX_BLOCK = 1 << 16
MAX_SEGMENT = 256 << 20
NO_SEGMENT_MSG = ("no ringshim segment for PID %d: not running with the shim, "
                  "or started before it")


class SegmentError(Exception):
    """A segment that is not a valid ringshim segment (corrupt or truncated).

    `starting` is set for an all-zero header: a process that has created its
    segment but not yet filled it in."""

    def __init__(self, msg: str, starting: bool = False):
        super().__init__(msg)
        self.starting = starting


@dataclass
class Segment:
    path: str
    pid: int
    start_time: int        # clock ticks after boot (field 22 of /proc/PID/stat)
    prog: str
    mode: str
    counters: Dict[str, int]   # in segment order
    gauges: Dict[str, int]
    live_threads: int
    uid: int = -1
    ino: int = 0
    read_at: float = 0.0   # time.monotonic() of the read


def shm_dir(env=None) -> str:
    env = os.environ if env is None else env
    return env.get(SHM_DIR_VAR) or DEFAULT_SHM_DIR


def segment_path(pid: int, directory: Optional[str] = None) -> str:
    return os.path.join(directory or shm_dir(), "ringshim.%d" % pid)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_segment(data: bytes, size: Optional[int] = None, path: str = "",
                  expect_pid: Optional[int] = None) -> Segment:
    """Decode a segment from its bytes.  SIZE is the file's size when DATA
    holds only a prefix of it.  Raises SegmentError."""
    size = len(data) if size is None else size
    if size < HEADER.size or len(data) < HEADER.size:
        if size == 0 or not data.strip(b"\0"):
            raise SegmentError("empty (the process is still creating it?)", starting=True)
        raise SegmentError("truncated: %d bytes, shorter than the %d-byte header"
                           % (size, HEADER.size))
    (magic, header_size, nslots, pid, ncounters, ngauges, block_size, start_time,
     names_off, gauges_off, used_off, retired_off, slots_off,
     prog, mode) = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        if not data[:HEADER.size].strip(b"\0"):
            raise SegmentError("header not filled in yet (the process is starting?)",
                               starting=True)
        raise SegmentError("bad magic %r (not a ringshim segment, or a format this "
                           "command does not know)" % magic)
    if header_size < HEADER.size:
        raise SegmentError("corrupt: header_size %d is smaller than the %d-byte fixed header"
                           % (header_size, HEADER.size))
    if not 0 < ncounters <= MAX_NAMES or ngauges > MAX_NAMES:
        raise SegmentError("corrupt: %d counters and %d gauges" % (ncounters, ngauges))
    if nslots % 64 or nslots > MAX_SLOTS:
        raise SegmentError("corrupt: %d thread slots (not a multiple of 64)" % nslots
                           if nslots % 64 else "corrupt: %d thread slots" % nslots)
    if block_size < 8 * ncounters or block_size > MAX_BLOCK:
        raise SegmentError("corrupt: block_size %d for %d counters" % (block_size, ncounters))
    if expect_pid is not None and pid != expect_pid:
        raise SegmentError("corrupt: the header names PID %d" % pid)
    regions = (("names", names_off, ncounters + ngauges),
               ("gauges", gauges_off, 8 * ngauges),
               ("live-slot bitmap", used_off, 8 * (nslots // 64)),
               ("retired block", retired_off, 8 * ncounters),
               ("thread slots", slots_off, nslots * block_size))
    end = header_size
    for what, off, length in regions:
        if off < HEADER.size:
            raise SegmentError("corrupt: the %s offset %d lies inside the header" % (what, off))
        end = max(end, off + length)
    if end > size:
        raise SegmentError("truncated: %d bytes, the header describes %d" % (size, end))
    if len(data) < end:
        raise SegmentError("truncated: read %d bytes, the header describes %d"
                           % (len(data), end))

    names: List[str] = []
    pos = names_off
    for _ in range(ncounters + ngauges):
        nul = data.find(b"\0", pos, min(len(data), pos + 256))
        if nul < 0:
            raise SegmentError("corrupt: counter name %d is not terminated" % (len(names) + 1))
        name = data[pos:nul].decode("ascii", "replace")
        if not NAME_RE.match(name):
            raise SegmentError("corrupt: counter name %d is %r" % (len(names) + 1, name))
        names.append(name)
        pos = nul + 1
    if len(set(names)) != len(names):
        raise SegmentError("corrupt: duplicate counter names")

    gauge_vals = struct.unpack_from("<%dq" % ngauges, data, gauges_off)
    used_words = struct.unpack_from("<%dQ" % (nslots // 64), data, used_off)
    block = struct.Struct("<%dQ" % ncounters)
    totals = list(block.unpack_from(data, retired_off))
    live = 0
    for w, word in enumerate(used_words):
        while word:
            bit = (word & -word).bit_length() - 1
            word &= word - 1
            live += 1
            vals = block.unpack_from(data, slots_off + (w * 64 + bit) * block_size)
            for i, v in enumerate(vals):
                totals[i] += v
    mask = (1 << 64) - 1
    return Segment(path=path, pid=pid, start_time=start_time, prog=_cstr(prog),
                   mode=_cstr(mode),
                   counters={n: v & mask for n, v in zip(names[:ncounters], totals)},
                   gauges=dict(zip(names[ncounters:], gauge_vals)),
                   live_threads=live)


def read_segment(path: str, expect_pid: Optional[int] = None) -> Segment:
    """Read and decode one segment file.  Raises OSError (FileNotFoundError,
    PermissionError...) or SegmentError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode):
            raise SegmentError("not a regular file")
        size = st.st_size
        if size > MAX_SEGMENT:
            raise SegmentError("corrupt: %d bytes, far larger than any segment" % size)
        chunks = []
        got = 0
        while got < size:
            chunk = os.pread(fd, size - got, got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    seg = parse_segment(data, size=len(data), path=path, expect_pid=expect_pid)
    seg.uid, seg.ino, seg.read_at = st.st_uid, st.st_ino, time.monotonic()
    return seg


# ---- processes ----------------------------------------------------------------

def process_state(pid: int, start_time: int) -> str:
    """'alive', 'gone' (no such process, or a zombie) or 'reused' (the pid
    now belongs to a process started at another time)."""
    info = procs.read_stat(pid)
    if info is None:
        return "gone"
    if info.state in ("Z", "X"):
        # A zombie leader whose other threads still run is alive (its
        # main thread called pthread_exit).
        try:
            if len(os.listdir("/proc/%d/task" % pid)) <= 1:
                return "gone"
        except OSError:
            return "gone"
    if start_time and info.start != start_time:
        return "reused"
    return "alive"


def uptime_seconds(start_time: int) -> Optional[float]:
    try:
        with open("/proc/uptime") as f:
            now = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, now - start_time / float(procs.CLK_TCK)) if start_time else None


def fmt_duration(secs: Optional[float]) -> str:
    if secs is None:
        return "?"
    s = int(secs)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return ("%dd%02d:%02d:%02d" % (d, h, m, s)) if d else "%d:%02d:%02d" % (h, m, s)


# ---- figures ------------------------------------------------------------------

def group_sum(counters: Dict[str, float], prefix: str) -> float:
    return sum(v for k, v in counters.items() if k.startswith(prefix))


def summary(counters: Dict[str, float]) -> Dict[str, Optional[float]]:
    """calls, served, passthrough, enters and the derived figures."""
    calls = group_sum(counters, "call_")
    served = group_sum(counters, "served_")
    pt = group_sum(counters, "pt_")
    enter = counters.get("enter", 0)
    sqes = counters.get("sqes", 0)
    io_calls = served + pt
    return {"calls": calls, "served": served, "passthrough": pt, "enters": enter,
            "io_calls": io_calls,
            "served_share": served / io_calls if io_calls else None,
            "enters_per_call": enter / calls if calls else None,
            "sqes_per_enter": sqes / enter if enter else None}


def rates(prev: Segment, cur: Segment) -> Tuple[float, Dict[str, float]]:
    """(elapsed seconds, per-second rate of every counter) between two
    samples.  A counter that went down (a torn read) counts as 0."""
    elapsed = cur.read_at - prev.read_at
    if elapsed <= 0:
        elapsed = 1e-9
    out = {}
    for name, v in cur.counters.items():
        out[name] = max(0, v - prev.counters.get(name, 0)) / elapsed
    return elapsed, out


# ---- output -------------------------------------------------------------------

GROUPS = (("Calls by type", "call_"),
          ("How served", "served_"),
          ("Passthrough reasons (calls sent to libc)", "pt_"),
          ("SQEs per io_uring_enter (submissions of each size)", "sqe_per_enter_"))


def _label(name: str, prefix: str) -> str:
    short = name[len(prefix):]
    if prefix == "sqe_per_enter_":
        short = short.replace("_up", "+").replace("_", "-")
    return short


def grouped(counters: Dict[str, float]) -> List[Tuple[str, List[Tuple[str, float]]]]:
    """Counters in display groups, in segment order; unknown names land in
    'Ring activity'."""
    out: List[Tuple[str, List[Tuple[str, float]]]] = []
    taken = set()
    for title, prefix in GROUPS:
        items = [(_label(n, prefix), v) for n, v in counters.items() if n.startswith(prefix)]
        taken.update(n for n in counters if n.startswith(prefix))
        out.append((title, items))
    other = [(n, v) for n, v in counters.items() if n not in taken]
    out.insert(3, ("Ring activity", other))
    return out


def fmt_num(v: float, rate: bool = False) -> str:
    if not rate:
        return str(int(v))
    if v == 0:
        return "0"
    return "%.0f" % v if abs(v) >= 100 else "%.1f" % v


def table(items: List[Tuple[str, str]], width: int = 79, indent: str = "  ") -> List[str]:
    if not items:
        return [indent + "(none)"]
    nw = max(len(n) for n, _ in items)
    vw = max(len(v) for _, v in items)
    cell = nw + 1 + vw
    per_row = max(1, (width - len(indent) + 3) // (cell + 3))
    lines = []
    for i in range(0, len(items), per_row):
        row = items[i:i + per_row]
        lines.append(indent + "   ".join("%-*s %*s" % (nw, n, vw, v) for n, v in row).rstrip())
    return lines


def fmt_ratio(v: Optional[float], pct: bool = False) -> str:
    if v is None:
        return "-"
    return "%.1f%%" % (100 * v) if pct else "%.2f" % v


def derived_lines(s: Dict[str, Optional[float]]) -> List[str]:
    return ["  served share     %7s  served / (served + passthrough)"
            % fmt_ratio(s["served_share"], pct=True),
            "  enters per call  %7s  io_uring_enter calls / intercepted calls"
            % fmt_ratio(s["enters_per_call"]),
            "  SQEs per enter   %7s  submissions / io_uring_enter calls"
            % fmt_ratio(s["sqes_per_enter"])]


def state_note(state: str, pid: int) -> str:
    if state == "gone":
        return ("process %d is gone: its segment was left behind (killed, or _exit); "
                "these are its last counters" % pid)
    return ("PID %d now belongs to another process: this segment is from an earlier "
            "one (killed, or _exit); these are its last counters" % pid)


def totals_text(seg: Segment, state: str) -> str:
    s = summary(seg.counters)
    up = uptime_seconds(seg.start_time) if state == "alive" else None
    head = "PID %d (%s), mode %s" % (seg.pid, seg.prog, seg.mode)
    if state == "alive":
        # Threads holding a counter slot: those that made a counted call.
        head += ", up %s, %d thread%s counting" % (fmt_duration(up), seg.live_threads,
                                                   "" if seg.live_threads == 1 else "s")
    else:
        head += ", not running"
    lines = [head,
             "  calls %d   served %d   passthrough %d   enters %d"
             % (s["calls"], s["served"], s["passthrough"], s["enters"]), ""]
    for title, items in grouped(seg.counters):
        lines.append(title)
        lines += table([(n, fmt_num(v)) for n, v in items])
    lines.append("Gauges (current values)")
    lines += table([(n, fmt_num(v)) for n, v in seg.gauges.items()])
    lines.append("Derived")
    lines += derived_lines(s)
    return "\n".join(lines)


def rates_text(seg: Segment, elapsed: float, r: Dict[str, float]) -> str:
    s = summary(r)
    lines = ["%s +%.2fs  calls/s %s  served/s %s (%s)  passthrough/s %s  enters/s %s"
             % (time.strftime("%H:%M:%S"), elapsed, fmt_num(s["calls"], True),
                fmt_num(s["served"], True), fmt_ratio(s["served_share"], pct=True),
                fmt_num(s["passthrough"], True), fmt_num(s["enters"], True))]
    for title, items in grouped(r):
        nz = [(n, fmt_num(v, True)) for n, v in items if v]
        if nz:
            lines.append("  %s:" % title.split(" (")[0])
            lines += table(nz, indent="    ")
    nzg = [(n, fmt_num(v)) for n, v in seg.gauges.items() if v]
    if nzg:
        lines += ["  Gauges:"] + table(nzg, indent="    ")
    lines.append("  enters/call %s  SQEs/enter %s" % (fmt_ratio(s["enters_per_call"]),
                                                     fmt_ratio(s["sqes_per_enter"])))
    return "\n".join(lines)


def _json_num(v: Optional[float], digits: int = 4):
    if v is None:
        return None
    return round(v, digits)


def totals_json(seg: Segment, state: str) -> dict:
    s = summary(seg.counters)
    counters = {"calls": int(s["calls"]), "passthrough": int(s["passthrough"])}
    counters.update(seg.counters)
    up = uptime_seconds(seg.start_time) if state == "alive" else None
    return {"pid": seg.pid, "prog": seg.prog, "mode": seg.mode, "alive": state == "alive",
            "start_time": seg.start_time, "uptime_s": _json_num(up, 2),
            "live_threads": seg.live_threads, "segment": seg.path,
            "counters": counters, "gauges": dict(seg.gauges),
            "derived": {"served": int(s["served"]), "io_calls": int(s["io_calls"]),
                        "served_share": _json_num(s["served_share"]),
                        "enters_per_call": _json_num(s["enters_per_call"]),
                        "sqes_per_enter": _json_num(s["sqes_per_enter"])}}


def rates_json(seg: Segment, elapsed: float, r: Dict[str, float]) -> dict:
    s = summary(r)
    rr = {"calls": _json_num(s["calls"], 2), "passthrough": _json_num(s["passthrough"], 2)}
    rr.update({k: _json_num(v, 2) for k, v in r.items()})
    obj = totals_json(seg, "alive")
    obj.update({"time": round(time.time(), 3), "interval_s": round(elapsed, 4), "rates": rr,
                "rate_derived": {"served": _json_num(s["served"], 2),
                                 "served_share": _json_num(s["served_share"]),
                                 "enters_per_call": _json_num(s["enters_per_call"]),
                                 "sqes_per_enter": _json_num(s["sqes_per_enter"])}})
    return obj


# ---- listing and cleanup --------------------------------------------------------

@dataclass
class Listing:
    live: List[Segment]
    unreadable: List[Tuple[int, str]]     # (pid, reason)
    removed: int
    not_removed: int


def _remove_stale(path: str, ino: Optional[int]) -> Optional[bool]:
    """True if removed (or already gone), False if not permitted, None on
    another error.  INO guards against removing a segment a new process with
    the same pid has just created."""
    try:
        if ino is not None and os.lstat(path).st_ino != ino:
            return None
        os.unlink(path)
        return True
    except FileNotFoundError:
        return True
    except PermissionError:
        return False
    except OSError:
        return None


def list_segments(directory: Optional[str] = None, clean: bool = True) -> Listing:
    directory = directory or shm_dir()
    out = Listing([], [], 0, 0)
    try:
        names = os.listdir(directory)
    except OSError as e:
        raise SegmentError("cannot list %s: %s" % (directory, e.strerror or e))
    entries = sorted((int(m.group(1)), n) for n in names for m in [SEGMENT_RE.match(n)] if m)
    for pid, name in entries:
        path = os.path.join(directory, name)
        seg = None
        ino = None
        reason = None
        try:
            seg = read_segment(path, expect_pid=pid)
            ino = seg.ino
            state = process_state(pid, seg.start_time)
        except FileNotFoundError:
            continue   # exited while we looked
        except PermissionError:
            try:
                st = os.lstat(path)
            except OSError:
                continue
            ino = st.st_ino
            state = process_state(pid, 0)
            reason = "not readable: owned by uid %d" % st.st_uid
        except SegmentError as e:
            state = process_state(pid, 0)
            if e.starting and state == "alive":
                continue   # being created right now
            reason = "unusable segment: %s" % e
        except OSError as e:
            state = process_state(pid, 0)
            reason = "cannot read: %s" % (e.strerror or e)
        if state != "alive":
            if clean:
                done = _remove_stale(path, ino)
                if done:
                    out.removed += 1
                elif done is False:
                    out.not_removed += 1
            continue
        if seg is None:
            out.unreadable.append((pid, reason or "?"))
        else:
            out.live.append(seg)
    return out


def listing_text(lst: Listing) -> str:
    rows = []
    for seg in lst.live:
        s = summary(seg.counters)
        rows.append((str(seg.pid), seg.prog, seg.mode,
                     fmt_duration(uptime_seconds(seg.start_time)),
                     str(int(s["calls"])), str(int(s["served"])), str(int(s["passthrough"])),
                     str(int(s["enters"]))))
    lines = []
    if rows:
        head = ("PID", "PROG", "MODE", "UPTIME", "CALLS", "SERVED", "PASSTHROUGH", "ENTERS")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        left = {1, 2}
        for r in [head] + rows:
            lines.append("  ".join(c.ljust(w) if i in left else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    for pid, reason in lst.unreadable:
        lines.append("%d (%s)" % (pid, reason))
    if not lst.live and not lst.unreadable:
        lines.append("no processes are running with the shim")
    if lst.removed:
        lines.append("removed %d stale segment%s (process gone, or its pid reused)"
                     % (lst.removed, "" if lst.removed == 1 else "s"))
    if lst.not_removed:
        lines.append("could not remove %d stale segment%s of other users (run as root)"
                     % (lst.not_removed, "" if lst.not_removed == 1 else "s"))
    return "\n".join(lines)


def listing_json(lst: Listing) -> dict:
    procs_out = []
    for seg in lst.live:
        s = summary(seg.counters)
        procs_out.append({"pid": seg.pid, "prog": seg.prog, "mode": seg.mode,
                          "uptime_s": _json_num(uptime_seconds(seg.start_time), 2),
                          "live_threads": seg.live_threads,
                          "calls": int(s["calls"]), "served": int(s["served"]),
                          "passthrough": int(s["passthrough"]), "enters": int(s["enters"])})
    return {"processes": procs_out,
            "unreadable": [{"pid": p, "reason": r} for p, r in lst.unreadable],
            "removed": lst.removed, "not_removed": lst.not_removed}


# ---- the command ------------------------------------------------------------------

STAT_USAGE = "usage: ringshim stat [--json]\n" \
             "       ringshim stat PID [--watch SECONDS] [--json]"


def stat_help() -> str:
    return "\n".join([
        STAT_USAGE,
        "",
        "Show the counters of processes running with libringshim.so, read live from",
        "their shared-memory segments (/dev/shm/ringshim.PID).",
        "",
        "Without a PID: one line per process running with the shim (PID, program,",
        "mode, uptime, and the totals of calls, calls served by the ring, calls",
        "passed to libc, and io_uring_enter calls).  Segments left behind by processes",
        "that are gone (killed, or ended with _exit) or whose pid was reused are",
        "removed, and how many is said.  Segments of other users that cannot be read",
        "are listed as '(not readable: owned by uid N)'.",
        "",
        "With a PID: every counter and gauge of that process, grouped (calls per",
        "call type, how they were served, why calls went to libc, ring activity",
        "with the SQEs-per-enter histogram, gauges), and derived figures:",
        "served share = served / (served + passthrough), enters per call (enters /",
        "calls) and SQEs per enter (sqes / enters).",
        "",
        "Options:",
        "  -w, --watch SECONDS  every SECONDS print per-second rates (difference",
        "                       between two samples / elapsed time) until Ctrl-C or",
        "                       until the process exits (both exit 0)",
        "  --json               machine-readable output: one JSON object (with",
        "                       --watch, one object per line)",
        "  -h, --help           this help",
        "",
        "Exit status: 0 on success; 1 when the PID has no segment, or its segment",
        "cannot be read or is corrupt; 2 for bad usage.",
        "",
        "%s=DIR reads the segments from DIR instead of /dev/shm (for tests)." % SHM_DIR_VAR,
        "docs/observability.md explains every counter.",
    ])


class UsageError(Exception):
    pass


def parse_stat_args(argv: List[str]) -> dict:
    opts = {"pid": None, "watch": None, "json": False, "help": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            opts["help"] = True
        elif a == "--json":
            opts["json"] = True
        elif a in ("-w", "--watch") or a.startswith("--watch="):
            if "=" in a:
                val = a.split("=", 1)[1]
            else:
                if i + 1 >= len(argv):
                    raise UsageError("option %s needs a value" % a)
                i += 1
                val = argv[i]
            try:
                secs = float(val)
            except ValueError:
                secs = -1.0
            if not 0.01 <= secs <= 86400:
                raise UsageError("--watch: expected seconds between 0.01 and 86400, got '%s'"
                                 % val)
            opts["watch"] = secs
        elif a.startswith("-"):
            raise UsageError("unknown option '%s'" % a)
        elif opts["pid"] is not None:
            raise UsageError("only one PID, please (got '%s' after %d)" % (a, opts["pid"]))
        else:
            if not a.isdigit() or int(a) <= 0:
                raise UsageError("expected a process ID, got '%s'" % a)
            opts["pid"] = int(a)
        i += 1
    if opts["watch"] is not None and opts["pid"] is None:
        raise UsageError("--watch needs a PID")
    return opts


def err(msg: str) -> None:
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.flush()


def _emit(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _read_for_pid(pid: int, path: str) -> Tuple[Optional[Segment], int]:
    """(segment, 0) or (None, exit status) after printing why."""
    for attempt in range(20):
        try:
            return read_segment(path, expect_pid=pid), 0
        except FileNotFoundError:
            if procs.read_stat(pid) is None:
                err("no ringshim segment for PID %d: no such process" % pid)
            else:
                err(NO_SEGMENT_MSG % pid)
            return None, 1
        except PermissionError:
            try:
                uid = os.stat(path).st_uid
            except OSError:
                uid = -1
            err("cannot read %s: not readable: owned by uid %d (run as that user or root)"
                % (path, uid))
            return None, 1
        except SegmentError as e:
            if e.starting and attempt < 19:
                time.sleep(0.025)
                continue
            err("%s: %s" % (path, e))
            return None, 1
        except OSError as e:
            err("cannot read %s: %s" % (path, e.strerror or e))
            return None, 1
    return None, 1  # not reached


def watch(pid: int, path: str, first: Segment, interval: float, as_json: bool) -> int:
    prev = first
    if not as_json:
        _emit("watching PID %d (%s, mode %s) every %gs; Ctrl-C to stop"
              % (pid, first.prog, first.mode, interval))
    while True:
        time.sleep(interval)
        try:
            cur = read_segment(path, expect_pid=pid)
        except FileNotFoundError:
            cur = None
        except SegmentError as e:
            if not e.starting:
                err("%s: %s" % (path, e))
                return 1
            cur = None   # a new process with this pid is creating its segment
        except OSError as e:
            err("cannot read %s: %s" % (path, e.strerror or e))
            return 1
        state = "gone" if cur is None else process_state(pid, cur.start_time)
        if cur is not None and cur.start_time != prev.start_time:
            state = "reused"
        if state != "alive":
            how = {"gone": "has exited", "reused": "has exited (its PID was reused)"}[state]
            msg = "process %d %s" % (pid, how)
            if cur is not None and state == "gone":
                msg += "; its segment was left behind (killed, or _exit)"
            if as_json:
                err(msg)
            else:
                _emit(msg)
            return 0
        elapsed, r = rates(prev, cur)
        if as_json:
            _emit(json.dumps(rates_json(cur, elapsed, r), sort_keys=False))
        else:
            _emit(rates_text(cur, elapsed, r))
        prev = cur


def cmd_stat(argv: List[str]) -> int:
    try:
        opts = parse_stat_args(argv)
    except UsageError as e:
        err("stat: " + str(e))
        sys.stderr.write("Try 'ringshim stat --help' for more information.\n")
        return 2
    if opts["help"]:
        print(stat_help())
        return 0
    try:
        return _run(opts)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # Output piped into head(1) and the like: stop quietly.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


def _run(opts: dict) -> int:
    pid = opts["pid"]
    if pid is None:
        try:
            lst = list_segments()
        except SegmentError as e:
            err(str(e))
            return 1
        _emit(json.dumps(listing_json(lst)) if opts["json"] else listing_text(lst))
        return 0
    path = segment_path(pid)
    seg, rc = _read_for_pid(pid, path)
    if seg is None:
        return rc
    state = process_state(pid, seg.start_time)
    if opts["watch"] is not None:
        if state != "alive":
            err(state_note(state, pid))
            return 0
        return watch(pid, path, seg, opts["watch"], opts["json"])
    if state != "alive":
        err(state_note(state, pid))
    _emit(json.dumps(totals_json(seg, state)) if opts["json"] else totals_text(seg, state))
    return 0
