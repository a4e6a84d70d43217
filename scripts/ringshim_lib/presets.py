"""Presets: one JSON file per preset in the presets directory, plus config
file templates in presets/conf/.  The harness only ever reads these fields;
it never looks at a preset's name.

Fields (all strings may use {placeholders}):
  description   one line for --list-presets
  packages      Debian packages the preset needs
  ports         {"port": N, ...}; "port" is the measured server's ready port
  server        measured server command (shell-free, shlex-split)
  load          load generator command
  parser        optional load parser name (default: from the load program)
  reference     {"NAME": "CMD"}: extra variants run without the shim
  helpers       [{"cmd": CMD, "ready": PORT}]: started before and stopped
                after every run, never preloaded
  variants      default variant list, e.g. "off,batch,latency"
  runs, warmup  defaults
  stop_signal   signal asking the server to exit normally (default TERM),
                e.g. USR1 for haproxy's soft stop
  setup         {"dirs": [...], "blobs": {"rel/path": BYTES},
                 "templates": {"conf/x.conf.in": "x.conf"}} created under the
                runtime directory OUT/runtime
  demo          overrides for --demo (e.g. shorter load, runs=3)

Placeholders: {port} and any other key of "ports", {out} (the --out
directory), {rt} (OUT/runtime), {build} (build directory of the checkout,
or $RINGSHIM_BUILD_DIR), {presets} (this directory), {user}, {group}."""

import grp
import json
import os
import pwd
import re
import shlex
from typing import Dict, List

from .paths import PRESETS_DIR

KNOWN_FIELDS = {"description", "packages", "ports", "server", "load", "parser", "reference",
                "helpers", "variants", "runs", "warmup", "setup", "demo", "notes",
                "stop_signal"}

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class PresetError(ValueError):
    pass


def presets_dir() -> str:
    return os.environ.get("RINGSHIM_PRESETS_DIR") or PRESETS_DIR


def names() -> List[str]:
    d = presets_dir()
    try:
        return sorted(f[:-5] for f in os.listdir(d) if f.endswith(".json"))
    except OSError:
        return []


def load(name: str) -> Dict:
    path = os.path.join(presets_dir(), name + ".json")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not os.path.isfile(path):
        raise PresetError("unknown preset '%s' (available: %s)" % (name, ", ".join(names())))
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as e:
        raise PresetError("preset %s: %s: bad JSON: %s" % (name, path, e))
    unknown = set(data) - KNOWN_FIELDS
    if unknown:
        raise PresetError("preset %s: unknown fields %s" % (name, ", ".join(sorted(unknown))))
    for field in ("server", "load", "ports"):
        if field not in data:
            raise PresetError("preset %s: missing field '%s'" % (name, field))
    if "port" not in data["ports"]:
        raise PresetError("preset %s: ports has no 'port'" % name)
    data["name"] = name
    return data


def base_values(out_dir: str, build: str) -> Dict[str, str]:
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return {"out": out_dir, "rt": os.path.join(out_dir, "runtime"), "build": build,
            "presets": presets_dir(), "user": user, "group": group}


def expand(text: str, values: Dict[str, object]) -> str:
    """Replace {name} for known names only (config files keep their braces)."""
    def sub(m):
        key = m.group(1)
        return str(values[key]) if key in values else m.group(0)
    return _PLACEHOLDER.sub(sub, text)


def expand_cmd(cmd: str, values: Dict[str, object]) -> List[str]:
    """shlex-split first, then expand each word (so paths with spaces stay whole)."""
    try:
        words = shlex.split(cmd)
    except ValueError as e:
        raise PresetError("cannot parse command %r: %s" % (cmd, e))
    return [expand(w, values) for w in words]


def unknown_placeholders(cmd: str, values: Dict[str, object]) -> List[str]:
    return sorted({m.group(1) for m in _PLACEHOLDER.finditer(cmd) if m.group(1) not in values})


def _blob(size: int) -> bytes:
    pattern = bytes((i * 131 + 7) & 0xFF for i in range(256))
    return (pattern * (size // 256 + 1))[:size]


def setup_runtime(preset: Dict, values: Dict[str, object]) -> List[str]:
    """Create the runtime files of a preset under {rt}; returns what was made."""
    rt = str(values["rt"])
    made = []
    setup = preset.get("setup") or {}
    os.makedirs(rt, exist_ok=True)
    for d in setup.get("dirs", []):
        path = _inside(rt, expand(d, values))
        os.makedirs(path, exist_ok=True)
        made.append(path)
    for rel, size in (setup.get("blobs") or {}).items():
        path = _inside(rt, expand(rel, values))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(_blob(int(size)))
        made.append(path)
    for src, dst in (setup.get("templates") or {}).items():
        src_path = os.path.join(presets_dir(), src)
        try:
            with open(src_path) as f:
                text = f.read()
        except OSError as e:
            raise PresetError("template %s: %s" % (src_path, e.strerror))
        path = _inside(rt, expand(dst, values))
        with open(path, "w") as f:
            f.write(expand(text, values))
        made.append(path)
    return made


def _inside(root: str, rel: str) -> str:
    path = os.path.normpath(os.path.join(root, rel))
    if os.path.commonpath([root, path]) != os.path.normpath(root):
        raise PresetError("runtime path %s is outside %s" % (rel, root))
    return path
