#!/usr/bin/env python3
"""Turns the latest `cargo bench -p mempool-benches --bench peers` results
into a Markdown table (median time per cycle, and its ratio to this crate's
default strategy) and an SVG plot of time per cycle against thread count.

    python3 benches/report.py [target/criterion] [benches/contention.svg]

Run it from the workspace root, where the benches' results land.

Reads criterion's `<group>/<bench>/new/estimates.json` files; uses only the
standard library, so it runs on a fresh machine.
"""
import json
import os
import sys
from xml.sax.saxutils import escape

CRITERION = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
SVG = sys.argv[2] if len(sys.argv) > 2 else "benches/contention.svg"
GROUPS = ["single", "nested", "threads_2", "threads_4", "threads_8"]
DEFAULT = "mempool_PerThread"
# The peers drawn in the plot (all are in the table).
PLOTTED = {
    "mempool_PerThread": ("mempool (default: PerThread)", "#d62728", 3.0),
    "mempool_Mutex": ("mempool Mutex", "#ff7f0e", 2.0),
    "regex-automata": ("regex-automata", "#1f77b4", 2.0),
    "thread_local": ("thread_local", "#2ca02c", 2.0),
    "mempool-0.3.1": ("mempool 0.3.1", "#9467bd", 2.0),
    "crossbeam-segqueue": ("SegQueue by hand", "#8c564b", 1.5),
    "parking_lot-mutex-vec": ("Mutex<Vec> by hand", "#7f7f7f", 1.5),
    "lockfree-object-pool_linear": ("lockfree-object-pool linear", "#17becf", 1.5),
    "allocate": ("allocate, no pool", "#bcbd22", 1.5),
}


def median_ns(group, bench):
    path = os.path.join(CRITERION, group, bench, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def benches():
    names = set()
    for group in GROUPS:
        d = os.path.join(CRITERION, group)
        if os.path.isdir(d):
            names.update(n for n in os.listdir(d) if n != "report")
    ours = sorted(n for n in names if n.startswith("mempool_"))
    return ours + sorted(n for n in names if not n.startswith("mempool_"))


def table(names):
    head = "| pool | " + " | ".join(g.replace("_", " ") for g in GROUPS) + " |"
    rows = [head, "|---" * (len(GROUPS) + 1) + "|"]
    base = {g: median_ns(g, DEFAULT) for g in GROUPS}
    for name in names:
        cells = []
        for g in GROUPS:
            t = median_ns(g, name)
            if t is None:
                cells.append("n/a")
            elif base[g]:
                cells.append(f"{t:.2f} ns ({t / base[g]:.2f}×)")
            else:
                cells.append(f"{t:.2f} ns")
        label = name.replace("_", " ", 1) if name.startswith("mempool_") else name.replace("_", " ")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(path):
    threads = [1, 2, 4, 8]
    groups = ["single", "threads_2", "threads_4", "threads_8"]
    series = []
    for name, (label, colour, width) in PLOTTED.items():
        points = [(n, median_ns(g, name)) for n, g in zip(threads, groups)]
        points = [(n, t) for n, t in points if t is not None]
        if points:
            series.append((label, colour, width, points))
    top = max(t for *_, pts in series for _, t in pts)
    top = max(1.0, top * 1.1)
    w, h, left, right, bottom, upper = 760, 440, 60, 230, 50, 20
    pw, ph = w - left - right, h - upper - bottom

    def x(n):
        return left + pw * threads.index(n) / (len(threads) - 1)

    def y(t):
        return upper + ph * (1 - t / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="14">time per cycle (ns, median; lower is better), Vec&lt;u8&gt; get+push+return, one shared pool</text>',
    ]
    for i in range(6):
        t = top * i / 5
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.0f}</text>')
    for n in threads:
        out.append(f'<text x="{x(n):.1f}" y="{upper + ph + 18}" text-anchor="middle">{n}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{h - 8}" text-anchor="middle">threads (2-core machine)</text>')
    for i, (label, colour, width, pts) in enumerate(series):
        d = " ".join(f"{x(n):.1f},{y(t):.1f}" for n, t in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="{width}"/>')
        for n, t in pts:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(t):.1f}" r="3" fill="{colour}"/>')
        ly = upper + 10 + i * 20
        out.append(f'<line x1="{w - right + 15}" x2="{w - right + 40}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="{width}"/>')
        out.append(f'<text x="{w - right + 46}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    names = benches()
    if not names:
        sys.exit(f"no results under {CRITERION}: run `cargo bench -p mempool-benches --bench peers` first")
    print(table(names))
    plot(SVG)
    print(f"\nplot written to {SVG}", file=sys.stderr)
