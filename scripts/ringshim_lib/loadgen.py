"""Parsers for load generator output.

Each parser is a pure function: text (stdout and stderr of one run, in any
interleaving) -> dict with the keys it can find among
    rps, p50_us, p99_us, requests, errors, secs
plus parser-specific extras.  A parser raises ParseError when the text has
no result in its format.  `requests` may be missing (then the harness
estimates it as rps x load duration)."""

import json
import math
import os
import re
import shlex
from typing import Callable, Dict, List, Optional


class ParseError(ValueError):
    pass


_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def _lines(text: str) -> List[str]:
    # Progress output uses \r to redraw one terminal line: keep every piece.
    return [piece for line in text.splitlines() for piece in line.split("\r")]


def _to_us(value: str, unit: str) -> float:
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}[unit]
    return float(value) * scale


# ---------------------------------------------------------------- wrk ----

def parse_wrk(text: str, argv: Optional[List[str]] = None) -> Dict:
    """wrk 4.x default output; percentiles need --latency."""
    out: Dict = {}
    m = re.search(r"^Requests/sec:\s*" + _NUM, text, re.M)
    if not m:
        raise ParseError("wrk: no 'Requests/sec:' line")
    out["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in " + _NUM + r"(us|ms|s|m|h),", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["secs"] = _to_us(m.group(2), m.group(3)) / 1e6
    in_dist = False
    for line in _lines(text):
        if line.strip().startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            m = re.match(r"\s*(\d+(?:\.\d+)?)%\s+" + _NUM + r"(us|ms|s|m|h)\s*$", line)
            if not m:
                in_dist = False
                continue
            pct = float(m.group(1))
            if pct == 50:
                out["p50_us"] = _to_us(m.group(2), m.group(3))
            elif pct == 99:
                out["p99_us"] = _to_us(m.group(2), m.group(3))
    m = re.search(r"^\s*Latency\s+" + _NUM + r"(us|ms|s|m|h)", text, re.M)
    if m:
        out["avg_us"] = _to_us(m.group(1), m.group(2))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = {k: int(v) for k, v in
                                zip(("connect", "read", "write", "timeout"), m.groups())}
        errors += sum(out["socket_errors"].values())
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        out["non_2xx"] = int(m.group(1))
        errors += out["non_2xx"]
    out["errors"] = errors
    return out


# ---------------------------------------------------- redis-benchmark ----

def _redis_requests_per_test(argv: Optional[List[str]]) -> int:
    n = 100000  # redis-benchmark's default -n
    args = list(argv or [])
    for i, a in enumerate(args):
        if a == "-n" and i + 1 < len(args) and args[i + 1].isdigit():
            n = int(args[i + 1])
    return n


def parse_redis_benchmark(text: str, argv: Optional[List[str]] = None) -> Dict:
    """redis-benchmark 7.0 `--csv` or `-q` output (several tests combined).

    Each test runs -n requests back to back, so the combined throughput is
    total requests / total time; p50 is the mean of the tests' p50 (equal
    -n per test) and p99 the worst test's p99.  `requests` comes from -n in
    ARGV (default 100000) times the number of tests."""
    tests = []
    lines = _lines(text)
    header = None
    for line in lines:
        s = line.strip()
        if s.startswith('"test",'):
            header = [h.strip('"') for h in s.split(",")]
            continue
        if header and s.startswith('"'):
            cells = [c.strip('"') for c in s.split(",")]
            if len(cells) != len(header):
                continue
            row = dict(zip(header, cells))
            try:
                t = {"test": row["test"], "rps": float(row["rps"])}
                if "p50_latency_ms" in row:
                    t["p50_us"] = float(row["p50_latency_ms"]) * 1e3
                if "p99_latency_ms" in row:
                    t["p99_us"] = float(row["p99_latency_ms"]) * 1e3
            except (KeyError, ValueError):
                continue
            tests.append(t)
    if not tests:
        for line in lines:
            m = re.match(r"\s*([A-Za-z0-9_ ()\-]+): " + _NUM + r" requests per second"
                         r"(?:, p50=" + _NUM + r" msec)?\s*$", line)
            if m:
                t = {"test": m.group(1), "rps": float(m.group(2))}
                if m.group(3):
                    t["p50_us"] = float(m.group(3)) * 1e3
                tests.append(t)
    if not tests:
        raise ParseError("redis-benchmark: no --csv rows or '-q' result lines")
    if any(t["rps"] <= 0 for t in tests):
        raise ParseError("redis-benchmark: a test reported 0 requests per second")
    n = _redis_requests_per_test(argv)
    out: Dict = {"tests": tests}
    out["rps"] = len(tests) / sum(1.0 / t["rps"] for t in tests)
    out["requests"] = n * len(tests)
    out["secs"] = sum(n / t["rps"] for t in tests)
    if all("p50_us" in t for t in tests):
        out["p50_us"] = sum(t["p50_us"] for t in tests) / len(tests)
    if all("p99_us" in t for t in tests):
        out["p99_us"] = max(t["p99_us"] for t in tests)
    return out


# ---------------------------------------------------------- memcaslap ----

def _log2_percentile(buckets: Dict[int, int], pct: float) -> Optional[float]:
    """memaslap's 'Log2 Dist' bucket k holds latencies in [2^(k-1), 2^k) us.
    Linear interpolation inside the bucket: a factor-2 resolution estimate."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    target = total * pct / 100.0
    seen = 0
    for k in sorted(buckets):
        c = buckets[k]
        if c and seen + c >= target:
            lo = 2.0 ** (k - 1) if k > 0 else 0.0
            hi = 2.0 ** k
            return lo + (hi - lo) * (target - seen) / c
        seen += c
    return None


def parse_memcaslap(text: str, argv: Optional[List[str]] = None) -> Dict:
    """memcaslap (libmemcached-tools 1.1.4): final 'Run time: ... Ops: ... TPS:'
    line; latency percentiles (approximate) from the 'Total Statistics' log2
    histogram that -S prints."""
    m = None
    for m in re.finditer(r"Run time:\s*" + _NUM + r"s\s+Ops:\s*(\d+)\s+TPS:\s*" + _NUM
                         + r"\s+Net_rate:\s*" + _NUM + r"M/s", text):
        pass
    if not m:
        raise ParseError("memcaslap: no final 'Run time: ... TPS: ...' line")
    out: Dict = {"secs": float(m.group(1)), "requests": int(m.group(2)),
                 "rps": float(m.group(3)), "net_mbytes_s": float(m.group(4))}
    block = None
    for b in re.finditer(r"Total Statistics \((\d+) events\)(.*?)(?:\n\s*\n|\Z)", text, re.S):
        block = b
    if block:
        body = block.group(2)
        a = re.search(r"Avg:\s*" + _NUM, body)
        if a:
            out["avg_us"] = float(a.group(1))
        dist = body.split("Log2 Dist:", 1)
        if len(dist) == 2:
            buckets: Dict[int, int] = {}
            for row in re.finditer(r"^\s*(\d+):((?:\s+\d+)+)\s*$", dist[1], re.M):
                base = int(row.group(1))
                for j, c in enumerate(row.group(2).split()):
                    buckets[base + j] = int(c)
            p50 = _log2_percentile(buckets, 50)
            p99 = _log2_percentile(buckets, 99)
            if p50 is not None:
                out["p50_us"] = p50
                out["p99_us"] = p99
                out["latency_note"] = "from memcaslap's log2 histogram (factor-2 buckets)"
    m = re.search(r"^get_misses:\s*(\d+)", text, re.M)
    if m:
        out["get_misses"] = int(m.group(1))
    return out


# --------------------------------------------------------- rs-loadgen ----

def _kv_pairs(line: str) -> Dict[str, str]:
    return dict(re.findall(r"([A-Za-z0-9_]+)=(\S+)", line))


def _rs_from_fields(f: Dict) -> Dict:
    out: Dict = {}
    if "rps" in f:  # rs-loadgen
        for k in ("rps", "mbps", "secs"):
            if k in f:
                out[k] = float(f[k])
        for k in ("requests", "errors", "conns", "size", "depth", "threads",
                  "verified_bytes"):
            if k in f:
                out[k] = int(f[k])
        for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"):
            if k in f:
                out[k] = float(f[k])
    elif "count" in f and "secs" in f:  # rs-pingpong
        out["requests"] = int(f["count"])
        out["secs"] = float(f["secs"])
        if out["secs"] <= 0:
            raise ParseError("rs-pingpong: secs=0")
        out["rps"] = out["requests"] / out["secs"]
        for src, dst in (("rtt_us_p50", "p50_us"), ("rtt_us_p99", "p99_us")):
            if src in f:
                out[dst] = float(f[src])
        if "errors" in f:
            out["errors"] = int(f["errors"])
    else:
        raise ParseError("no rps= or count= field")
    return out


def parse_rs_loadgen(text: str, argv: Optional[List[str]] = None) -> Dict:
    """rs-loadgen's summary line (text or -j JSON); also rs-pingpong's."""
    result = None
    for line in _lines(text):
        s = line.strip()
        if s.startswith("{"):
            try:
                obj = json.loads(s)
            except ValueError:
                continue
            if isinstance(obj, dict) and ("rps" in obj or "count" in obj):
                result = _rs_from_fields(obj)
            continue
        m = re.match(r"(rs-loadgen|rs-pingpong):\s+(.*)$", s)
        if m and ("requests=" in s or "count=" in s):
            try:
                result = _rs_from_fields(_kv_pairs(m.group(2)))
            except (ValueError, ParseError):
                continue
    if result is None:
        raise ParseError("rs-loadgen: no summary line ('rs-loadgen: conns=... requests=... "
                         "rps=...' or its -j JSON)")
    return result


# ------------------------------------------------------------ dispatch ----

PARSERS: Dict[str, Callable[..., Dict]] = {
    "wrk": parse_wrk,
    "redis-benchmark": parse_redis_benchmark,
    "memcaslap": parse_memcaslap,
    "rs-loadgen": parse_rs_loadgen,
}

PROGRAM_PARSERS = {
    "wrk": "wrk",
    "redis-benchmark": "redis-benchmark",
    "memcaslap": "memcaslap",
    "memaslap": "memcaslap",
    "rs-loadgen": "rs-loadgen",
    "rs-pingpong": "rs-loadgen",
}


def detect(load_argv: List[str]) -> str:
    """Parser name for a load command, from its program name ('auto' if unknown)."""
    if not load_argv:
        return "auto"
    return PROGRAM_PARSERS.get(os.path.basename(load_argv[0]), "auto")


def parse(text: str, parser: str = "auto", argv: Optional[List[str]] = None) -> Dict:
    """Parse with the named parser, or try each one for 'auto'."""
    if isinstance(argv, str):
        argv = shlex.split(argv)
    if parser != "auto":
        res = PARSERS[parser](text, argv)
        res["parser"] = parser
        return _check(res)
    reasons = []
    for name, fn in PARSERS.items():
        try:
            res = fn(text, argv)
        except ParseError as e:
            reasons.append(str(e))
            continue
        res["parser"] = name
        return _check(res)
    raise ParseError("output not recognised by any parser (%s)" % "; ".join(reasons))


def _check(res: Dict) -> Dict:
    rps = res.get("rps")
    if rps is None or not math.isfinite(rps) or rps <= 0:
        raise ParseError("%s: throughput is %r" % (res.get("parser", "?"), rps))
    return res
