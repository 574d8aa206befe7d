#!/usr/bin/env python3
"""Plots p9_bench's JSON: throughput vs I/O size and round-trip latency, as PNGs (gnuplot).

  bench/plot.py RESULTS.json OUTDIR
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    results, outdir = sys.argv[1], sys.argv[2]
    runs = json.load(open(results))["benchmarks"]
    series = {}  # name -> [(size, GB/s)]
    lat = []     # (label, microseconds)
    for r in runs:
        if r.get("error_occurred"):
            continue
        name = r["name"].removesuffix("/real_time")  # Throughput rows run on wall time.
        parts = name.split("/")
        if "donated_GBps" in r:
            # Donated and native reads alternate in one loop (BM_DonatedRead): both rates.
            size, msize = int(parts[-2]), int(parts[-1]) >> 20
            series.setdefault("9p/ours/donated_read msize=%dM" % msize, []).append((size, r["donated_GBps"]))
            series.setdefault("native pread, same loop, msize=%dM" % msize, []).append((size, r["native_GBps"]))
        elif "bytes_per_second" in r:
            size = int(parts[-2] if parts[0] == "9p" else parts[-1])
            key = "/".join(parts[:-2] if parts[0] == "9p" else parts[:-1])
            if parts[0] == "9p":
                key += " msize=%dM" % (int(parts[-1]) >> 20)
            series.setdefault(key, []).append((size, r["bytes_per_second"] / 1e9))
        elif any(k in name for k in ("rtt64", "getattr", "walk", "open_clunk", "native_stat",
                                    "resolve_stat")) \
                and "concurrent" not in name:
            lat.append((name.replace("_", "-"), r["real_time"] / 1e3 if r["time_unit"] == "ns" else r["real_time"]))
    with tempfile.TemporaryDirectory() as d:
        plot = ["set terminal png size 1100,650", "set output '%s/throughput.png'" % outdir,
                "set logscale x 2", "set xlabel 'request size (bytes)'", "set ylabel 'GB/s'",
                "set key outside right", "set title 'Sequential throughput: floors, our gofer, diod (one run)'"]
        cmds = []
        for i, (k, pts) in enumerate(sorted(series.items())):
            f = os.path.join(d, "s%d.dat" % i)
            with open(f, "w") as out:
                for s, v in sorted(pts):
                    out.write("%d %f\n" % (s, v))
            cmds.append("'%s' using 1:2 with linespoints title '%s'" % (f, k.replace("_", "-")))
        plot.append("plot " + ", ".join(cmds))
        f = os.path.join(d, "lat.dat")
        with open(f, "w") as out:
            for i, (k, v) in enumerate(lat):
                out.write('%d "%s" %f\n' % (i, k, v))
        plot += ["set output '%s/latency.png'" % outdir, "unset logscale x", "set style fill solid",
                 "set boxwidth 0.7", "set xlabel ''", "set ylabel 'microseconds per operation'",
                 "set xtics rotate by -45", "set key off", "set title 'Round trips (one run)'",
                 "plot '%s' using 1:3:xtic(2) with boxes" % f]
        subprocess.run(["gnuplot"], input="\n".join(plot), text=True, check=True)


if __name__ == "__main__":
    main()
