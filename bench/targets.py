#!/usr/bin/env python3
"""Issue 7's ratio targets, from rounds of p9_bench JSON (bench/targets.sh makes them).

  bench/targets.py ROUND.json...

Each file is one p9_bench run of the rows the targets compare. A ratio is taken within one
file (its rows ran seconds apart), never across files, since this machine's speed drifts
by tens of percent over minutes; the table gives each ratio's median over the rounds, its
range, and in how many rounds it met the target.
"""
import json
import statistics
import sys

M = 1 << 20


def rows(path):
    """name (without /real_time) -> the run's result."""
    out = {}
    for r in json.load(open(path))["benchmarks"]:
        if r.get("error_occurred") or r.get("run_type") == "aggregate":
            continue
        out[r["name"].replace("/real_time", "")] = r
    return out


def rate(r):  # bytes/s, or items/s
    return r.get("bytes_per_second") or r.get("items_per_second")


def time_us(r):
    t = r["real_time"]
    return {"ns": t / 1e3, "us": t, "ms": t * 1e3}[r["time_unit"]]


# Read rows, as suffixes of "9p/ours" and "9p/diod". "-spin/read": our client polls before
# it sleeps (and our gofer too), the sandbox's default.
READS = ("/read", "/read_pipelined", "-spin/read")


def read_label(kind):
    return kind[1:].replace("spin/", "polling ")


# (target, label, ratio from one round's rows, goal, True if the ratio must be >= goal)
def checks():
    for size in (M, 4 * M):
        for msize in (M, 4 * M):
            for kind in READS:
                yield ("reads >= 60% of the socketpair floor",
                       f"{read_label(kind)} {size >> 20} MiB, msize {msize >> 20}M",
                       lambda r, k=kind, s=size, m=msize: rate(r[f"9p/ours{k}/{s}/{m}"]) /
                       rate(r[f"floor/socketpair_bulk/{s}"]),
                       0.6, True)
    for size in (64 << 10, M, 4 * M):
        for kind in READS:
            yield (">= 3x diod's read throughput",
                   f"{read_label(kind)} {size >> 10} KiB, msize 4M (diod caps at 64 KiB)",
                   lambda r, k=kind, s=size: rate(r[f"9p/ours{k}/{s}/{4 * M}"]) /
                   rate(r[f"9p/diod{k}/{s}/{4 * M}"]),
                   3.0, True)
    for size in (M, 4 * M):
        yield ("donated-fd reads within 1.2x of native pread",
               f"{size >> 20} MiB: donated time / native time",
               lambda r, s=size: 1 / r[f"9p/ours/donated_read/{s}/{M}"]["native_over_donated"],
               1.2, False)
    # The floor's echo is a thread of the requester's process; the gofer is another process,
    # so the second floor (echo in a child process) is the like-for-like one.
    for kind in ("ours", "ours-spin"):
        for cross, where in ((0, "same CPU"), (1, "across CPUs")):
            for floor, echo in (("socketpair_rtt64", "thread"),
                                ("socketpair_rtt64_process", "process")):
                yield ("Tgetattr <= 1.5x the socketpair round trip",
                       f"{kind}, {where}, echo {echo}",
                       lambda r, k=kind, c=cross, f=floor:
                       time_us(r[f"9p/{k}/getattr_pinned/{c}"]) / time_us(r[f"floor/{f}/{c}"]),
                       1.5, False)
    for spin in ("", "-spin"):
        for n in (1, 2, 8, 32):
            yield ("concurrent Tgetattr/s >= 2x diod's",
                   f"{n} requesters{', polling' if spin else ''}",
                   lambda r, s=spin, t=n: rate(r[f"9p/ours{s}/concurrent_getattr/threads:{t}"]) /
                   rate(r[f"9p/diod{s}/concurrent_getattr/threads:{t}"]),
                   2.0, True)


def main():
    rounds = [rows(p) for p in sys.argv[1:]]
    if not rounds:
        sys.exit("usage: bench/targets.py ROUND.json...")
    print(f"{len(rounds)} rounds; ratio: median [min-max]; met: rounds meeting the goal\n")
    print("| target | case | ratio | goal | met |")
    print("|---|---|---|---|---|")
    for target, label, ratio, goal, at_least in checks():
        vals = []
        for r in rounds:
            try:
                vals.append(ratio(r))
            except (KeyError, ZeroDivisionError, TypeError):
                pass  # A row that did not run (diod missing, an error): no sample.
        if not vals:
            print(f"| {target} | {label} | no data | | |")
            continue
        met = sum(1 for v in vals if (v >= goal if at_least else v <= goal))
        print(f"| {target} | {label} | {statistics.median(vals):.2f} "
              f"[{min(vals):.2f}-{max(vals):.2f}] | {'>=' if at_least else '<='} {goal} "
              f"| {met}/{len(vals)} |")


if __name__ == "__main__":
    main()
