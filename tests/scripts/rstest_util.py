"""Shared helpers of the tests of scripts/ (not a test module itself)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(REPO, "scripts")
FIXTURES = os.path.join(HERE, "fixtures")
RINGSHIM = os.path.join(SCRIPTS, "ringshim")
PYTHON = sys.executable or "/usr/bin/python3"
DUMMY_LIB = os.path.join(FIXTURES, "dummy-libringshim.so")

if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def clean_env(**extra):
    """The caller's environment without RINGSHIM_* and LD_PRELOAD, plus EXTRA."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RINGSHIM_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def ringshim(args, env=None, timeout=60, **kw):
    """Run the ringshim command with this interpreter; CompletedProcess (text)."""
    return subprocess.run([PYTHON, RINGSHIM] + list(args), env=env if env is not None
                          else clean_env(RINGSHIM_LIB=DUMMY_LIB),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)


def procs_matching(*needles):
    """PIDs whose command line contains every needle (for leak checks)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/stat" % name) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(n in cmd for n in needles):
            found.append((int(name), cmd))
    return found


def world_executable(path):
    """True if any user may execute PATH: the file and every directory above it."""
    import stat as _stat
    path = os.path.realpath(path)
    try:
        if not os.stat(path).st_mode & _stat.S_IXOTH:
            return False
        d = os.path.dirname(path)
        while True:
            if not os.stat(d).st_mode & _stat.S_IXOTH:
                return False
            if d == os.path.dirname(d):
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def python_for_others():
    """A Python interpreter another user (nobody) can run, or None."""
    for cand in (sys.executable, "/usr/bin/python3"):
        if cand and world_executable(cand):
            return cand
    return None
