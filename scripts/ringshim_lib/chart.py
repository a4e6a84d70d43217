"""Chart of an A/B report with gnuplot: median and min–max of throughput,
p99 latency and server CPU per request, one bar per variant."""

import os
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

PANELS = (("rps", "throughput (req/s)"),
          ("p99_us", "p99 latency (µs)"),
          ("cpu_us_per_req", "server CPU per request (µs)"))


def _num(x: Optional[float]) -> str:
    return "?" if x is None else repr(float(x))


def write_data(path: str, summaries: List[Dict]) -> None:
    with open(path, "w") as f:
        f.write("# idx variant " + " ".join("%s_med %s_min %s_max" % (m, m, m)
                                            for m, _ in PANELS) + "\n")
        for i, s in enumerate(summaries):
            cells = [str(i), '"%s"' % s["variant"]]
            for m, _ in PANELS:
                cells += [_num(s[m]["median"]), _num(s[m]["min"]), _num(s[m]["max"])]
            f.write(" ".join(cells) + "\n")


def script(data_path: str, title: str, n: int, panels=PANELS) -> str:
    """gnuplot commands; PANELS is a subset of the module's PANELS (the data
    file always has every column, in PANELS order)."""
    lines = [
        'set datafile missing "?"',
        "set multiplot layout 1,%d title %s" % (
            len(panels), _q(title + "  (bars: median; whiskers: min–max of the runs)")),
        "set style fill solid 0.6 border -1",
        "set boxwidth 0.6",
        "set grid ytics",
        "set yrange [0:*]",
        "set xrange [-0.6:%g]" % (n - 0.4),
        "set xtics rotate by -30",
        "unset key",
    ]
    for metric, label in panels:
        c = 3 + 3 * [m for m, _ in PANELS].index(metric)
        lines += [
            "set title %s" % _q(label),
            "plot %s using 1:%d:xtic(2) with boxes lc rgb '#4477aa', "
            "'' using 1:%d:%d:%d with yerrorbars lc rgb '#222222' pt 0"
            % (_q(data_path), c, c, c + 1, c + 2),
        ]
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def render(out_dir: str, summaries: List[Dict], title: str) -> Tuple[Dict[str, str], List[str]]:
    """Writes chart.dat, chart.gp, chart.svg and (if pngcairo works) chart.png.
    Returns ({kind: path}, notes)."""
    notes: List[str] = []
    made: Dict[str, str] = {}
    data_path = os.path.join(out_dir, "chart.dat")
    write_data(data_path, summaries)
    panels = [(m, label) for m, label in PANELS
              if any(s[m]["median"] is not None for s in summaries)]
    if not panels or not any(s["rps"]["median"] for s in summaries):
        notes.append("no successful run: no chart")
        return made, notes
    gp = script(data_path, title, len(summaries), panels)
    with open(os.path.join(out_dir, "chart.gp"), "w") as f:
        f.write(gp)
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        notes.append("gnuplot is not installed: chart skipped (install gnuplot-nox; "
                     "the data is in chart.dat)")
        return made, notes
    width = max(900, 300 * len(panels) + 60 * len(summaries))
    for kind, term in (("svg", "svg size %d,460 dynamic enhanced font 'sans,11' "
                               "background rgb 'white'" % width),
                       ("png", "pngcairo size %d,460 enhanced font 'sans,10'" % width)):
        path = os.path.join(out_dir, "chart." + kind)
        prog = "set terminal %s\nset output %s\n%s" % (term, _q(path), gp)
        try:
            r = subprocess.run([gnuplot], input=prog.encode(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            ok = r.returncode == 0 and os.path.isfile(path) and os.path.getsize(path) > 0
            err = r.stdout.decode("utf-8", "replace").strip().splitlines()
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, err = False, [str(e)]
        if ok:
            made[kind] = path
        else:
            notes.append("gnuplot could not write %s%s" % (
                path, (": " + err[-1]) if err else ""))
            try:
                os.unlink(path)
            except OSError:
                pass
    return made, notes
