"""Where things are, in a repository checkout and after `make install`.

Checkout:   REPO/scripts/ringshim, REPO/scripts/ringshim_lib, REPO/scripts/presets,
            REPO/build/libringshim.so, REPO/build/demo/*
Installed:  PREFIX/bin/ringshim, PREFIX/share/ringshim/{ringshim_lib,presets},
            PREFIX/lib/libringshim.so
"""

import os
from typing import List, Optional

PKG_DIR = os.path.dirname(os.path.abspath(__file__))
PRESETS_DIR = os.path.join(os.path.dirname(PKG_DIR), "presets")
# Set by the `ringshim` command to its own directory (symlinks resolved).
SCRIPT_DIR: Optional[str] = None


def script_dir() -> str:
    """Directory of the `ringshim` command (checkout: scripts/; installed: bin/)."""
    if SCRIPT_DIR:
        return SCRIPT_DIR
    return os.path.dirname(PKG_DIR)  # imported from a checkout: scripts/


def library_candidates(sdir: Optional[str] = None) -> List[str]:
    sdir = sdir or script_dir()
    return [os.path.normpath(os.path.join(sdir, "..", "build", "libringshim.so")),
            os.path.normpath(os.path.join(sdir, "..", "lib", "libringshim.so"))]


def find_library(env=None, sdir: Optional[str] = None):
    """(path, tried): path is absolute and exists, or None; tried lists what was looked at."""
    env = os.environ if env is None else env
    override = env.get("RINGSHIM_LIB")
    if override:
        path = os.path.abspath(override)
        return (path if os.path.isfile(path) else None), [path]
    tried = library_candidates(sdir)
    for path in tried:
        if os.path.isfile(path):
            return path, tried
    return None, tried


def repo_root(sdir: Optional[str] = None) -> Optional[str]:
    """The checkout the command runs from, or None when installed."""
    sdir = sdir or script_dir()
    root = os.path.dirname(sdir)
    if os.path.isdir(os.path.join(root, "shim")) or os.path.isdir(os.path.join(root, ".git")):
        return root
    return None


def build_dir(env=None) -> str:
    env = os.environ if env is None else env
    if env.get("RINGSHIM_BUILD_DIR"):
        return os.path.abspath(env["RINGSHIM_BUILD_DIR"])
    root = repo_root()
    return os.path.join(root, "build") if root else os.path.abspath("build")


def install_deps_script() -> Optional[str]:
    path = os.path.join(script_dir(), "install-deps")
    return path if os.access(path, os.X_OK) else None
