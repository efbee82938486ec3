#!/usr/bin/env python3
"""Instructions per cycle of every contender in every code shape, counted by
callgrind: the table of benches/README.md, and the speed check of .ci/run.

Each (contender, shape, mode) runs twice under callgrind, with two cycle
counts, in the `shapes` example (benches/examples/shapes.rs says what the
shapes and modes are); the difference of the two totals divided by the
difference of the counts is the cost of one cycle, with the program around the
loop taken out. Counts are the same from run to run, whatever else the machine
does, so they are what the check decides by.

    python3 benches/instructions.py             # build, count, print the table
    python3 benches/instructions.py --check     # also fail if a target is missed

The targets (`--check`), each against a peer counted in the same run:
  - first thread, every shape: mempool <= 1.2 x mempool 0.3.1
  - later thread, every shape: mempool <= thread_local
Where the pool does not meet its target yet (HELD below, and benches/README.md
says why), the check holds it at the ratio it has today, half an instruction
of slack included, so that it still fails on any regression there.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys

SHAPES = ["loop", "closure", "closure2", "handler", "static", "boxed", "arc"]
MODES = ["first", "later"]
CONTENDERS = [
    "mempool",
    "mempool-0.3.1",
    "thread_local",
    "regex-automata",
    "at-hand",
    "mimalloc",
]
# The peers the check compares against, and what is allowed.
TARGETS = {"first": ("mempool-0.3.1", 1.2), "later": ("thread_local", 1.0)}
# Shapes over their target, held at today's ratio (ours + 0.5) / peer's.
# The first thread pays the stealable slot's protocol (the steal word's test,
# the value's load and the return's home test: about 6 instructions that
# 0.3.1's owner value, which no other thread can take, does without); with function-pointer hooks
# (`static`, `boxed`) also the indirect call to the reset and the registers and
# stack around it, where 0.3.1 has no reset hook; `closure2` is where the
# pool's get and return are not inlined into a closure that has two calls.
HELD = {
    ("loop", "first"): 1.30,
    ("closure", "first"): 1.25,
    ("closure2", "first"): 1.85,
    ("closure2", "later"): 1.17,
    ("static", "first"): 1.43,
    ("static", "later"): 1.05,
    ("boxed", "first"): 1.62,
    ("boxed", "later"): 1.23,
    ("arc", "first"): 1.44,
}
# Cycle counts of the two runs.
FEW, MANY = 20_000, 120_000


def applies(contender, shape):
    return not (contender == "at-hand" and shape in ("static", "boxed", "arc"))


def build(root):
    out = subprocess.run(
        ["cargo", "build", "--release", "-p", "mempool-benches", "--example", "shapes",
         "--message-format=json"],
        cwd=root, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "shapes" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("instructions.py: cargo built no `shapes` executable")


def total(binary, contender, shape, mode, cycles):
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", binary,
         "count", contender, shape, mode, str(cycles)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if run.returncode != 0 or not found:
        sys.exit(f"instructions.py: {contender} {shape} {mode} failed:\n{run.stderr}")
    return int(found.group(1).replace(",", ""))


def per_cycle(binary, case):
    few = total(binary, *case, FEW)
    many = total(binary, *case, MANY)
    return (many - few) / (MANY - FEW)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a target is missed")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated (the check needs mempool and its peers)")
    args = parser.parse_args()
    contenders = args.contenders.split(",")
    if args.check:
        for peer, _ in TARGETS.values():
            if peer not in contenders:
                contenders.append(peer)
        if "mempool" not in contenders:
            contenders.insert(0, "mempool")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = build(root)
    cases = [(c, s, m) for c in contenders for s in SHAPES if applies(c, s) for m in MODES]
    # valgrind runs one thread at a time: one process per core.
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        counts = dict(zip(cases, pool.map(lambda case: per_cycle(binary, case), cases)))

    print("Instructions per cycle (get, push a byte, return), callgrind:\n")
    header = " | ".join(f"{s}, {m}" for s in SHAPES for m in MODES)
    print(f"| contender | {header} |")
    print("|---|" + "---|" * (len(SHAPES) * len(MODES)))
    for c in contenders:
        cells = [f"{counts[(c, s, m)]:.0f}" if (c, s, m) in counts else "" for s in SHAPES for m in MODES]
        print(f"| {c} | " + " | ".join(cells) + " |")

    if not args.check:
        return
    failed = []
    print()
    for s in SHAPES:
        for m in MODES:
            peer, target = TARGETS[m]
            limit = HELD.get((s, m), target)
            ours, theirs = counts[("mempool", s, m)], counts[(peer, s, m)]
            ok = ours <= limit * theirs
            kind = "target" if limit == target else f"held (target {target})"
            print(f"{'ok  ' if ok else 'FAIL'} {s}, {m}: mempool {ours:.1f} <= {limit} x {peer} {theirs:.1f}"
                  f" = {limit * theirs:.1f}, {kind}")
            if not ok:
                failed.append(f"{s}, {m}")
            elif ours <= target * theirs and limit != target:
                print(f"     {s}, {m} now meets its target: take it out of HELD")
    if failed:
        sys.exit(f"instructions.py: over its limit in {len(failed)} shapes: {', '.join(failed)}")
    met = sum(1 for s in SHAPES for m in MODES if (s, m) not in HELD)
    print(f"ok: {met} shapes within their target, {len(HELD)} held at today's ratio")


if __name__ == "__main__":
    main()
