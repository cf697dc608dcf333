"""Benchmark result rows in the format every scripts/bench-* shares (docs/performance.md,
"How to run scripts/bench").

When the environment variable BENCH_OUT names a directory, a benchmark appends its rows to
$BENCH_OUT/results.csv (the header is written first when the file is new):

    benchmark,metric,unit,runs,median,min,max,baseline,baseline_median,ratio,note

ratio = median / baseline_median (empty without a baseline). Without BENCH_OUT nothing is
written: the scripts print their own human-readable output as before.

As a module (Python benchmarks):
    import bench_out
    bench_out.add("fiber", "wall_s@1100_endpoints", "s", [1.2, 1.1, ...],
                  baseline="fping -i 1", baseline_values=[2.4, ...], note="...")
From a shell script:
    python3 scripts/bench_out.py add BENCH METRIC UNIT "V1 V2 V3" [--baseline NAME
        --baseline-values "B1 B2"] [--note TEXT]
scripts/bench then calls `bench_out.py finish DIR` (results.json + the summary table)."""
import argparse
import csv
import fcntl
import json
import os
import statistics
import sys

FIELDS = ["benchmark", "metric", "unit", "runs", "median", "min", "max",
          "baseline", "baseline_median", "ratio", "note"]


def enabled():
    return bool(os.environ.get("BENCH_OUT"))


def _num(x):
    """Compact number text: 3 significant decimals for small values, integers kept whole."""
    if x is None or x == "":
        return ""
    x = float(x)
    if (x == int(x) and abs(x) >= 100) or abs(x) >= 1000:
        return f"{x:.0f}"  # never exponent form (".4g" wrote 16739.5 as 1.674e+04)
    return f"{x:.4g}"


def machine_note():
    """Load average and cores at the time of the row: the machine is shared."""
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    return f"load {load} on {os.cpu_count()} cores"


def add(benchmark, metric, unit, values, baseline="", baseline_values=None, note="", out=None):
    """Appends one row (median/min/max over values) when BENCH_OUT (or out) is set. Returns the row."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError(f"{benchmark} {metric}: no values")
    bmed = statistics.median(baseline_values) if baseline_values else None
    med = statistics.median(values)
    row = {"benchmark": benchmark, "metric": metric, "unit": unit, "runs": len(values),
           "median": _num(med), "min": _num(min(values)), "max": _num(max(values)),
           "baseline": baseline if bmed is not None else "", "baseline_median": _num(bmed),
           "ratio": f"{med / bmed:.3g}" if bmed else "",
           "note": "; ".join(x for x in (note, machine_note()) if x).replace(",", ";")}
    out = out or os.environ.get("BENCH_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "results.csv")
        with open(path, "a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            w = csv.DictWriter(f, FIELDS)
            if f.tell() == 0:
                w.writeheader()
            w.writerow(row)
    return row


def read(out):
    with open(os.path.join(out, "results.csv"), newline="") as f:
        return list(csv.DictReader(f))


# Targets from the issues (10 and the audit issues): (benchmark, metric) -> (test, text).
# A test gets the row and returns True/False (None: no target for this row); rows without a
# target show "-".
def _lt(limit):
    return lambda r: float(r["median"]) < limit


def _ratio_lt(limit):
    return lambda r: r["ratio"] != "" and float(r["ratio"]) < limit


def _ratio_ge(limit):
    return lambda r: r["ratio"] != "" and float(r["ratio"]) >= limit


TARGETS = {
    ("footprint", "rss_steady"): (_lt(15), "< 15 MiB (aim 8)"),
    ("footprint", "cpu_pct_of_core"): (_lt(1), "< 1% of a core"),
    ("footprint", "threads"): (lambda r: _ratio_lt(1)(r) if r["baseline"] == "zabbix_agent2" else None,
                               "fewer than zabbix_agent2"),
    ("fiber", "wall_s@1100_endpoints_tcp"): (_ratio_lt(1), "faster than fping"),
    ("fiber", "wall_s@1100_endpoints_icmp"): (_ratio_lt(1), "faster than fping"),
    ("recording", "wall_s@600_streams"): (_ratio_lt(1), "faster than ffprobe"),
    ("attendance", "wall_s@900k_records"): (_lt(1), "< 1 s and faster than sqlite3"),
    ("attendance", "peak_rss@900k_records"): (_lt(64), "< 64 MiB"),
    ("attendance", "xlsx_wall_s@900k_records"): (_lt(2), "< 2 s"),
    ("attendance", "xlsx_peak_rss@900k_records"): (_lt(64), "< 64 MiB"),
    ("drain", "msgs_per_s_plain"): (_ratio_ge(0.5), ">= 50% of mosquitto_pub"),
    ("drain", "msgs_per_s_tls"): (_ratio_ge(0.5), ">= 50% of mosquitto_pub"),
}


def target(row):
    t = TARGETS.get((row["benchmark"], row["metric"]))
    if not t:
        return "", "-"
    test, text = t
    try:
        met = test(row)
    except ValueError:
        return text, "?"
    return ("", "-") if met is None else (text, "yes" if met else "NO")


def finish(out):
    """Writes results.json beside results.csv and prints the summary table."""
    rows = read(out)
    for r in rows:
        r["target"], r["target_met"] = target(r)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
    head = ["benchmark", "metric", "median [min-max] unit", "runs", "baseline (median)", "ratio", "target", "met"]
    table = []
    for r in rows:
        span = f"{r['median']} [{r['min']}-{r['max']}] {r['unit']}" if r["runs"] != "1" else f"{r['median']} {r['unit']}"
        base = f"{r['baseline']} ({r['baseline_median']})" if r["baseline"] else ""
        table.append([r["benchmark"], r["metric"], span, r["runs"], base, r["ratio"], r["target"], r["target_met"]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    for line in [head, ["-" * w for w in widths]] + table:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add")
    a.add_argument("benchmark")
    a.add_argument("metric")
    a.add_argument("unit")
    a.add_argument("values", help="space-separated run values")
    a.add_argument("--baseline", default="")
    a.add_argument("--baseline-values", default="")
    a.add_argument("--note", default="")
    f = sub.add_parser("finish")
    f.add_argument("dir")
    args = ap.parse_args()
    if args.cmd == "add":
        if not enabled():
            return 0
        add(args.benchmark, args.metric, args.unit, args.values.split(), args.baseline,
            [float(x) for x in args.baseline_values.split()] or None, args.note)
    else:
        finish(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
