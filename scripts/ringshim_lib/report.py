"""A/B report: per-variant summaries, report.json and report.md."""

import json
import math
from typing import Dict, List, Optional

from . import stats

METRICS = ("rps", "p50_us", "p99_us", "cpu_us_per_req", "syscalls_per_req", "enter_per_req")


def summarize(records: List[Dict], variants: List[Dict], baseline: Optional[str]) -> List[Dict]:
    """One summary per variant, in variant order.  Failed runs are left out
    of every statistic (and listed in the report)."""
    ok_by_variant = {v["name"]: [r for r in records if r["variant"] == v["name"] and r["ok"]]
                     for v in variants}
    base_runs = ok_by_variant.get(baseline, []) if baseline else []
    out = []
    for v in variants:
        runs = ok_by_variant[v["name"]]
        all_runs = [r for r in records if r["variant"] == v["name"]]
        s: Dict = {"variant": v["name"], "kind": v["kind"], "command": v.get("command_str"),
                   "runs_ok": len(runs), "runs_failed": len(all_runs) - len(runs)}
        for m in METRICS:
            s[m] = stats.summary([r.get(m) for r in runs if r.get(m) is not None])
        s["noisy"] = stats.is_noisy([r["rps"] for r in runs]) if runs else False
        if baseline and v["name"] != baseline:
            for metric, key in (("rps", "rps_ratio"), ("cpu_us_per_req", "cpu_ratio")):
                a = [r[metric] for r in runs if r.get(metric) is not None]
                b = [r[metric] for r in base_runs if r.get(metric) is not None]
                ratio, lo, hi = stats.ratio_ci(a, b)
                s[key] = {"ratio": ratio, "low": lo, "high": hi, "n": len(a), "n_base": len(b)}
        out.append(s)
    return out


def write_json(path: str, data: Dict) -> None:
    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o
    with open(path, "w") as f:
        json.dump(clean(data), f, indent=2, sort_keys=False)
        f.write("\n")


def fmt_num(x: Optional[float], digits: int = 3) -> str:
    """Three significant digits, thousands separators for big numbers."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1000:
        return "{:,.0f}".format(x)
    decimals = max(0, digits - 1 - int(math.floor(math.log10(ax))))
    return "%.*f" % (decimals, x)


def fmt_ratio(r: Optional[Dict]) -> str:
    if not r or r.get("ratio") is None:
        return "n/a"
    if r.get("low") is None:
        return "%.3f×" % r["ratio"]
    return "%.3f× [%.3f–%.3f]" % (r["ratio"], r["low"], r["high"])


def table_markdown(summaries: List[Dict], baseline: Optional[str]) -> str:
    base = baseline or "baseline"
    head = ["variant", "ok runs", "req/s (median)", "req/s min–max", "p50 µs", "p99 µs",
            "server CPU µs/req", "syscalls/req", "shim enters/req",
            "req/s vs %s [95%% CI]" % base, "CPU/req vs %s [95%% CI]" % base, "flags"]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for s in summaries:
        rps = s["rps"]
        flags = []
        if s["noisy"]:
            flags.append("noisy (spread %.0f%%)" % (100 * rps["spread"]))
        if s["runs_failed"]:
            flags.append("%d failed" % s["runs_failed"])
        if s["kind"] == "reference":
            flags.append("reference")
        if s["variant"] == baseline:
            ratio_rps = ratio_cpu = "1 (baseline)"
        else:
            ratio_rps = fmt_ratio(s.get("rps_ratio"))
            ratio_cpu = fmt_ratio(s.get("cpu_ratio"))
        minmax = "n/a" if rps["min"] is None else "%s–%s" % (fmt_num(rps["min"]),
                                                             fmt_num(rps["max"]))
        cells = [s["variant"], "%d/%d" % (s["runs_ok"], s["runs_ok"] + s["runs_failed"]),
                 fmt_num(rps["median"]), minmax,
                 fmt_num(s["p50_us"]["median"]), fmt_num(s["p99_us"]["median"]),
                 fmt_num(s["cpu_us_per_req"]["median"]),
                 fmt_num(s["syscalls_per_req"]["median"]),
                 fmt_num(s["enter_per_req"]["median"]),
                 ratio_rps, ratio_cpu, ", ".join(flags) or ""]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def render_markdown(data: Dict) -> str:
    h = data["host"]
    cfg = data["config"]
    lines = ["# ringshim A/B report", ""]
    if data.get("aborted"):
        lines += ["**Aborted:** %s — the numbers below cover only the runs that finished."
                  % data["aborted"], ""]
    lines += [
        "- date: %s" % h["date"],
        "- host: %s, kernel %s (%s)" % (h["hostname"], h["kernel"], h["machine"]),
        "- CPU: %s × %s" % (h["cpu_model"], h["cpu_count"]),
        "- command line: `%s` (in `%s`)" % (data["command_line"], data["cwd"]),
    ]
    if cfg.get("preset"):
        lines.append("- preset: %s" % cfg["preset"])
    lines += [
        "- runs: %d per variant, alternating %s in that order in each round; warm-up %g s"
        % (cfg["runs"], ", ".join(v["name"] for v in cfg["variants"]), cfg["warmup"]),
        "- library: %s%s" % (cfg.get("library") or "not used",
                             " (sha256 %s…)" % cfg["library_sha256"]
                             if cfg.get("library_sha256") else ""),
        "- load generator: `%s` (parser: %s)" % (cfg["load_command"], cfg["parser"]),
    ]
    for v in cfg["variants"]:
        env = " ".join("%s=%s" % kv for kv in sorted(v["env"].items())) or "no LD_PRELOAD"
        lines.append("- variant **%s**: `%s` — %s" % (v["name"], v["command_str"], env))
    for hp in cfg.get("helpers", []):
        lines.append("- helper (not measured, never preloaded): `%s` ready on port %d"
                     % (hp["command_str"], hp["port"]))
    lines.append("- system calls counted with: %s" % (cfg["syscalls"]["note"]))
    lines += ["", "## Results", "", table_markdown(data["summary"], cfg["baseline"]), ""]
    notes = [
        "Medians over the successful runs of each variant; failed runs are excluded "
        "and listed below.",
        "Ratios are median(variant) / median(%s) with a 95%% bootstrap confidence interval "
        "(%d resamples of the runs with replacement, fixed seed %d)."
        % (cfg["baseline"] or "baseline", stats.BOOTSTRAP_RESAMPLES, stats.BOOTSTRAP_SEED),
        "noisy: (max − min) / median of throughput above %d%%; such a variant needs more runs "
        "or a quieter machine before its ratio means much." % int(stats.NOISY_SPREAD * 100),
        "Server CPU: utime+stime of the server's whole process tree (all threads, io_uring "
        "SQPOLL and io-wq threads included) over the load, divided by the requests.",
        "syscalls/req: server system calls during the load (%s) / requests." % cfg["syscalls"]["method_label"],
        "shim enters/req: the library's io_uring_enter count (RINGSHIM_STATS file, summed over "
        "the server's processes) over the server's whole life, divided by the load's requests.",
    ]
    notes += data.get("notes", [])
    lines += ["Notes:", ""] + ["- " + n for n in notes] + [""]
    failed = [r for r in data["runs"] if not r["ok"]]
    if failed:
        lines += ["## Failed runs", ""]
        for r in failed:
            lines.append("- run %d, %s: %s (load output: `%s`)" % (r["run"], r["variant"],
                                                                  r["reason"], r["load_file"]))
        lines.append("")
    lines += ["## Runs", "",
              "| run | variant | ok | req/s | p50 µs | p99 µs | requests | CPU s | "
              "CPU µs/req | syscalls/req | shim enters/req |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["runs"]:
        lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["run"], r["variant"], "yes" if r["ok"] else "**no**", fmt_num(r.get("rps")),
            fmt_num(r.get("p50_us")), fmt_num(r.get("p99_us")),
            r.get("requests") if r.get("requests") is not None else "n/a",
            fmt_num(r.get("cpu_s")), fmt_num(r.get("cpu_us_per_req")),
            fmt_num(r.get("syscalls_per_req")), fmt_num(r.get("enter_per_req"))))
    lines += ["", "Raw output of every run is in `%s`." % data["raw_dir"]]
    if data.get("chart"):
        lines += ["", "![chart](%s)" % data["chart"]]
    return "\n".join(lines) + "\n"
