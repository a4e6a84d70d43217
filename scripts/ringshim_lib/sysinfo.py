"""Facts about the machine for the report header, and io_uring probes."""

import ctypes
import datetime
import hashlib
import os
import platform
import socket
from typing import Dict, Optional, Tuple

SYS_IO_URING_SETUP = 425          # same number on every architecture but alpha
IORING_SETUP_SQPOLL = 1 << 1
IO_URING_PARAMS_SIZE = 120        # struct io_uring_params


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_info() -> Dict[str, object]:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def io_uring_setup_works(flags: int) -> Tuple[bool, str]:
    """Create (and close) a 4-entry ring with FLAGS; (ok, reason)."""
    if platform.system() != "Linux":
        return False, "not Linux"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as e:
        return False, "no libc: %s" % e
    params = (ctypes.c_uint8 * IO_URING_PARAMS_SIZE)()
    ctypes.memmove(ctypes.addressof(params) + 8, ctypes.byref(ctypes.c_uint32(flags)), 4)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(SYS_IO_URING_SETUP), ctypes.c_uint32(4), params)
    if fd < 0:
        err = ctypes.get_errno()
        return False, "io_uring_setup: %s" % (os.strerror(err) if err else "failed")
    os.close(fd)
    return True, "ok"


def sqpoll_available() -> Tuple[bool, str]:
    return io_uring_setup_works(IORING_SETUP_SQPOLL)


def file_digest(path: Optional[str]) -> Optional[str]:
    if not path:
        return None
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()[:16]
    except OSError:
        return None
