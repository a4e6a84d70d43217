"""Processes the harness starts: own session/process group, CPU time of the
whole tree from /proc, stop by PID (never by name), port checks."""

import errno
import os
import signal
import socket
import subprocess
import time
from typing import Dict, Iterable, List, Optional, Set, Tuple

CLK_TCK = os.sysconf("SC_CLK_TCK")


class ProcInfo:
    __slots__ = ("pid", "state", "ppid", "pgrp", "session", "ticks", "start")

    def __init__(self, pid, state, ppid, pgrp, session, ticks, start):
        self.pid, self.state, self.ppid, self.pgrp = pid, state, ppid, pgrp
        self.session, self.ticks, self.start = session, ticks, start


def read_stat(pid: int) -> Optional[ProcInfo]:
    """/proc/PID/stat: utime+stime+cutime+cstime in ticks (all threads of the
    process, io_uring SQPOLL and io-wq threads included), or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] is field 3 (state): field N is rest[N - 3].
    try:
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        return ProcInfo(pid, rest[0], int(rest[1]), int(rest[2]), int(rest[3]),
                        ticks, int(rest[19]))
    except (IndexError, ValueError):
        return None


def all_procs() -> Dict[int, ProcInfo]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_stat(int(name))
            if info:
                out[info.pid] = info
    return out


def tree(root: int, procs: Optional[Dict[int, ProcInfo]] = None) -> Dict[int, ProcInfo]:
    """ROOT, its descendants, and anything else still in ROOT's session
    (the harness starts every server with setsid, so session == root pid)."""
    procs = all_procs() if procs is None else procs
    if root not in procs:
        return {}
    children: Dict[int, List[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: Set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    sid = procs[root].session
    if sid == root:
        found.update(p.pid for p in procs.values() if p.session == sid)
    return {pid: procs[pid] for pid in found}


def cpu_ticks(procs: Dict[int, ProcInfo]) -> int:
    return sum(p.ticks for p in procs.values())


def ticks_to_seconds(ticks: int) -> float:
    return ticks / float(CLK_TCK)


class Proc:
    """A started command in its own session (so its own process group).

    Descendants seen while it runs are remembered with their start times, so
    stop() can signal them by PID even if they left the process group, and
    never signals a recycled PID."""

    def __init__(self, argv: List[str], env: Dict[str, str], log_path: str,
                 cwd: Optional[str] = None, name: str = ""):
        self.argv = argv
        self.name = name or os.path.basename(argv[0])
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.popen: Optional[subprocess.Popen] = None
        self.pid = self.pgid = -1
        self.known: Dict[int, int] = {}
        self.returncode: Optional[int] = None
        self.killed = False
        self._log = open(log_path, "wb")

    def start(self) -> "Proc":
        """Separate from __init__ so the caller can register the object for
        cleanup before a process exists."""
        try:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd,
                                          stdin=subprocess.DEVNULL, stdout=self._log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        except BaseException:
            self._log.close()
            raise
        self.pid = self.pgid = self.popen.pid
        self.track()
        return self

    def track(self) -> Dict[int, ProcInfo]:
        if self.popen is None:
            return {}
        procs = tree(self.pid)
        for pid, info in procs.items():
            self.known.setdefault(pid, info.start)
        return procs

    def poll(self) -> Optional[int]:
        if self.popen is None:
            return self.returncode
        rc = self.popen.poll()
        if rc is not None:
            self.returncode = rc
        return rc

    def _alive_members(self) -> List[int]:
        """Our processes still running (zombies count as gone)."""
        alive: List[int] = []
        if self.popen is None:
            return alive
        procs = all_procs()
        for p in procs.values():
            if p.state == "Z":
                continue
            if p.pgrp == self.pgid or p.session == self.pgid or \
                    self.known.get(p.pid) == p.start:
                alive.append(p.pid)
        return alive

    def _signal_all(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        procs = all_procs()
        for pid, start in self.known.items():
            p = procs.get(pid)
            if p and p.start == start and p.pgrp != self.pgid and p.state != "Z":
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def stop(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> Optional[int]:
        """SIGTERM to the group (and stray descendants), wait up to GRACE
        seconds, then SIGKILL.  Returns the root's exit status."""
        try:
            if self.popen is None:
                return None
            if self.poll() is None or self._alive_members():
                self.track()
                self._signal_all(sig)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline:
                    self.poll()
                    if self.returncode is not None and not self._alive_members():
                        break
                    time.sleep(0.02)
                else:
                    self.killed = True
                    self._signal_all(signal.SIGKILL)
                    deadline = time.monotonic() + 3.0
                    while time.monotonic() < deadline:
                        self.poll()
                        if self.returncode is not None and not self._alive_members():
                            break
                        time.sleep(0.02)
            try:
                self.returncode = self.popen.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        finally:
            if not self._log.closed:
                self._log.close()
        return self.returncode

    def alive(self) -> bool:
        return bool(self._alive_members())


def run_with_timeout(proc: Proc, timeout: float) -> Tuple[Optional[int], bool]:
    """Wait for PROC; on timeout stop it.  Returns (status, timed_out)."""
    try:
        rc = proc.popen.wait(timeout=timeout)
        proc.returncode = rc
        proc.stop(grace=2.0)  # reap anything it left behind
        return rc, False
    except subprocess.TimeoutExpired:
        proc.stop(grace=2.0)
        return proc.returncode, True


def accepting(port: int, host: str = "127.0.0.1", timeout: float = 0.25) -> bool:
    """True if HOST:PORT accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listening_ports() -> Optional[Set[int]]:
    """Local TCP ports in LISTEN state (this network namespace), from
    /proc/net/tcp{,6}; None if they cannot be read."""
    ports: Set[int] = set()
    ok = False
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
            ok = True
        except OSError:
            continue
    return ports if ok else None


def port_in_use(port: int) -> bool:
    ports = listening_ports()
    if ports is not None:
        return port in ports
    return accepting(port)


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not port_in_use(port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def wait_ready(port: int, procs: Iterable[Proc], timeout: float) -> Tuple[bool, str]:
    """Wait until 127.0.0.1:PORT accepts, while every proc in PROCS is alive."""
    deadline = time.monotonic() + timeout
    procs = list(procs)
    while True:
        for p in procs:
            if p.poll() is not None:
                return False, "%s exited with status %s before accepting connections on " \
                              "port %d" % (p.name, describe_status(p.returncode), port)
        if accepting(port):
            return True, ""
        if time.monotonic() >= deadline:
            return False, "nothing accepted connections on 127.0.0.1:%d within %g s" \
                          % (port, timeout)
        time.sleep(0.05)


def describe_status(rc: Optional[int]) -> str:
    if rc is None:
        return "unknown"
    if rc < 0:
        try:
            return "signal %s" % signal.Signals(-rc).name
        except ValueError:
            return "signal %d" % -rc
    return str(rc)


def tail(path: str, lines: int = 20) -> List[str]:
    try:
        with open(path, "rb") as f:
            data = f.read()[-65536:]
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True
