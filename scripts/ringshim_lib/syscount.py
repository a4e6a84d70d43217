"""System calls of the server during the load: `perf stat -e
raw_syscalls:sys_enter` attached to the server's PIDs, or `strace -c -f`
as a fallback (which slows the server down a lot: the report says which
one was used).  When neither works the count is unavailable, never 0."""

import os
import re
import shutil
import signal
import subprocess
import time
from typing import List, Optional, Tuple

PERF_EVENT = "raw_syscalls:sys_enter"


def _try(argv: List[str], timeout: float = 10.0) -> Tuple[bool, str]:
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return r.returncode == 0, r.stdout.decode("utf-8", "replace")


def probe(preference: str = "auto") -> Tuple[Optional[str], str]:
    """(method, note): method is 'perf', 'strace' or None."""
    notes = []
    if preference == "off":
        return None, "disabled with --syscalls off"
    if preference in ("auto", "perf"):
        if shutil.which("perf"):
            ok, out = _try(["perf", "stat", "-x,", "-e", PERF_EVENT, "--", "true"])
            count = parse_perf(out) if ok else None
            if ok and count is not None:
                return "perf", "perf stat -e %s" % PERF_EVENT
            notes.append("perf stat -e %s does not work here (%s)"
                         % (PERF_EVENT, _first_line(out)))
        else:
            notes.append("perf is not installed")
    if preference in ("auto", "strace"):
        if shutil.which("strace"):
            ok, out = _try(["strace", "-c", "-f", "-o", os.devnull, "--", "true"])
            if ok:
                return "strace", "strace -c -f (attached: slows the server down)"
            notes.append("strace does not work here (%s)" % _first_line(out))
        else:
            notes.append("strace is not installed")
    return None, "; ".join(notes) or "unavailable"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:160]
    return "no output"


def parse_perf(text: str) -> Optional[int]:
    """perf stat -x, line: '1234,,raw_syscalls:sys_enter,...' -> 1234."""
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and PERF_EVENT in fields[2]:
            if fields[0].strip().isdigit():
                return int(fields[0])
            return None
    return None


def parse_strace(text: str) -> Optional[int]:
    """strace -c summary: the calls column of the 'total' line."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[-1] == "total" and len(fields) >= 4:
            try:
                return int(fields[3])
            except ValueError:
                return None
    return None


class Counter:
    """One attached counter for one load window."""

    def __init__(self, method: str, pids: List[int], out_path: str):
        self.method = method
        self.out_path = out_path
        if method == "perf":
            argv = ["perf", "stat", "-x,", "-e", PERF_EVENT, "-o", out_path,
                    "-p", ",".join(str(p) for p in pids)]
        else:
            argv = ["strace", "-c", "-f", "-o", out_path]
            for p in pids:
                argv += ["-p", str(p)]
        self._err = open(out_path + ".err", "wb")
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._err,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def settle(self) -> None:
        """Give the counter time to attach before the load starts."""
        time.sleep(0.3 if self.method == "perf" else 0.6)

    def stop(self) -> Tuple[Optional[int], str]:
        """(count, reason-if-None)."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
                return None, "%s did not stop" % self.method
        finally:
            self._err.close()
        self._drop_empty_err()
        try:
            with open(self.out_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        count = parse_perf(text) if self.method == "perf" else parse_strace(text)
        if count is None:
            err = ""
            try:
                with open(self.out_path + ".err", encoding="utf-8", errors="replace") as f:
                    err = f.read()
            except OSError:
                pass
            m = re.search(r"<not (counted|supported)>", text)
            why = m.group(0) if m else _first_line(err or text)
            return None, "%s gave no count (%s)" % (self.method, why)
        return count, ""

    def _drop_empty_err(self) -> None:
        try:
            if os.path.getsize(self.out_path + ".err") == 0:
                os.unlink(self.out_path + ".err")
        except OSError:
            pass

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait()
        if not self._err.closed:
            self._err.close()
