"""The table of bench/compare-create-delete.sh from its JSON files: medians over the rounds,
ratios to the no-fsync ceiling taken run by run (the runs of one round are neighbours in time),
the daemon's CPU per cycle, flushes per operation from its counters, the machine's load; then a
second table of where the CPU goes: CPU per cycle of the no-fsync ceiling, of the driver and of
the benchmark client, and the cores each run kept busy (CPU per cycle times cycles per second).

    python3 bench/compare_summary.py OUT ROUNDS C...
"""
import json
import statistics
import sys


def main():
    out, rounds, conc = sys.argv[1], int(sys.argv[2]), [int(c) for c in sys.argv[3:]]

    def load(tag, c, r):
        with open("%s/%s-c%d-%d.json" % (out, tag, c, r)) as f:
            return json.load(f)

    def rate(j):
        return j.get("ok_per_s", j.get("cycles_per_s"))

    def lat(j, q):
        m = j["latency_ms"]
        return (m["op"] if "op" in m else m)[q]

    med = statistics.median
    cpu_rows = []
    print("| c | no-fsync ceiling /s | 5-fsync ceiling /s | A /s (of no-fsync) | B /s (of no-fsync)"
          " | B/A | A p50 / p99 ms | B p50 / p99 ms | A / B daemon CPU µs per cycle"
          " | B flushes per op | load1, CPU PSI |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in conc:
        rows = {t: [load(t, c, r) for r in range(1, rounds + 1)]
                for t in ("nofsync", "fsync", "a", "b")}
        m = {t: med(rate(j) for j in v) for t, v in rows.items()}
        ratio = {t: med(rate(rows[t][i]) / rate(rows["nofsync"][i]) for i in range(rounds))
                 for t in ("a", "b")}
        ba = med(rate(rows["b"][i]) / rate(rows["a"][i]) for i in range(rounds))
        lt = {t: "%.1f / %.1f" % (med(lat(j, "p50") for j in rows[t]),
                                  med(lat(j, "p99") for j in rows[t])) for t in ("a", "b")}
        cpu = {t: med((j.get("driver") or {}).get("cpu_us_per_op") or 0 for j in rows[t])
               for t in ("a", "b")}
        fl = []
        for r in range(1, rounds + 1):
            with open("%s/b-c%d-%d.flush.json" % (out, c, r)) as f:
                x = json.load(f)
            if x["flushes"] is not None and x["waits"] is not None and x["waits"] > x["waits0"]:
                fl.append((x["flushes"] - x["flushes0"]) / (x["waits"] - x["waits0"]))
        cpu_rows.append((c, rows, m))
        mach = [j["machine"] for j in rows["a"] + rows["b"]]
        print("| %d | %.0f | %.0f | %.0f (%.2f) | %.0f (%.2f) | %.2f | %s | %s | %.0f / %.0f | %s"
              " | %.1f, %.0f %% |" % (
                  c, m["nofsync"], m["fsync"], m["a"], ratio["a"], m["b"], ratio["b"], ba,
                  lt["a"], lt["b"], cpu["a"], cpu["b"], "%.2f" % med(fl) if fl else "-",
                  med(x["load1_after"] for x in mach),
                  med(x.get("psi_cpu_some_avg10_after") or 0 for x in mach)))

    # where the CPU goes (the ceiling reports its own CPU since it has cpu_s; older runs: "-")
    print()
    print("| c | no-fsync ceiling CPU µs per cycle, cores | A driver + client CPU µs per cycle,"
          " cores | B driver + client CPU µs per cycle, cores |")
    print("|---|---|---|---|")
    for c, rows, m in cpu_rows:
        cells = []
        nf = [j.get("cpu_us_per_cycle") for j in rows["nofsync"]]
        if all(x is not None for x in nf):
            cu = med(nf)
            cells.append("%.0f, %.2f" % (cu, cu * m["nofsync"] / 1e6))
        else:
            cells.append("-")
        for t in ("a", "b"):
            d = med((j.get("driver") or {}).get("cpu_us_per_op") or 0 for j in rows[t])
            cl = med(1e6 * j.get("client_cpu_s", 0) / max(j.get("ops_ok") or 1, 1)
                     for j in rows[t])
            cells.append("%.0f + %.0f, %.2f" % (d, cl, (d + cl) * m[t] / 1e6))
        print("| %d | %s |" % (c, " | ".join(cells)))


if __name__ == "__main__":
    main()
