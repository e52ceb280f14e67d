#!/usr/bin/env python3
"""bench/report.py: turns bench/run's raw figures into the Markdown table, targets beside them.

Every repeated figure is shown as the median of the rounds with min–max; ratios are medians over
medians. Standard library only (runs under the system Python).
"""
import argparse
import json
import os
import platform
import statistics
from collections import defaultdict

# Published figures the issue compares with (µs per workflow run).
NEOGRAPH = {"chain3": 5.0, "fanout5": 11.6}
LANGGRAPH_PUBLISHED = {"chain3": 643.0, "fanout5": 2262.0}


def load_raw(path):
    rows = defaultdict(list)  # (impl, workload) -> [result, ...]
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                rows[(r["impl"], r["workload"])].append(r)
    return rows


def load_engine(paths):
    runs = defaultdict(list)  # benchmark name -> [µs per run, ...], one per round
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        for b in doc.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or "us_per_run" not in b:
                continue
            name = b["name"].split("/")[0].replace("BM_", "")
            runs[name].append(b["us_per_run"] * 1e6)  # the counter is seconds per run
    return runs


def load_durability(paths):
    """bench_durability's figures, one value per round for each: µs per step (no store, sync,
    async), ms per resume of the 1,000-step run, µs per served step, bytes per step."""
    figs = defaultdict(list)
    to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        for b in doc.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            name = b["name"].split("/")[0].replace("BM_", "")
            if "us_per_step" in b:  # the counters are seconds per step
                figs[name].append(b["us_per_step"] * 1e6)
            if name == "Resume1000":
                figs["resume_ms"].append(b["real_time"] * to_ms[b.get("time_unit", "ns")])
                figs["served_us"].append(b["us_per_served_step"] * 1e6)
                figs["store_bytes"].append(b["store_B_per_step"])
                figs["row_bytes"].append(b["step_row_B_per_step"])
    return figs


def med(values):
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "—"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def spread(values, digits=0):
    if not values:
        return "—"
    if len(values) == 1:
        return fmt(values[0], digits)
    return f"{fmt(med(values), digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def rfmt(x):
    return "—" if x is None else f"{x:.2f}×"


def verdict(ok):
    return "—" if ok is None else ("met" if ok else "**missed**")


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0
    return (f"{os.cpu_count()} cores ({model}), {mem} RAM, Linux {platform.release()}; "
            f"load average {load:.1f} when the report was written")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--engine", nargs="*", default=[])
    ap.add_argument("--durability", nargs="*", default=[])
    ap.add_argument("--cold")
    ap.add_argument("--listen-drops", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=0)
    a = ap.parse_args()

    rows = load_raw(a.raw)
    engine = load_engine(a.engine)
    targets = []  # (what, figure, target, met)

    def vals(impl, workload, key):
        return [r[key] for r in rows.get((impl, workload), []) if key in r]

    def m(impl, workload, key):
        return med(vals(impl, workload, key))

    out = []
    out.append("# troupe benchmarks\n")
    out.append(f"Machine: {machine()}. {a.rounds} rounds; figures are median (min–max).\n")

    # 1. Engine overhead
    out.append("## Engine overhead (no I/O: mock provider at zero latency)\n")
    out.append("| workflow | troupe, no store | troupe, journal (sync) | LangGraph.js, measured here "
               "| NeoGraph, published | LangGraph, published |")
    out.append("|---|---|---|---|---|---|")
    for shape, label, nostore, journal in (("chain3", "3-step chain", "Chain3_NoStore",
                                            "Chain3_Journal"),
                                           ("fanout5", "5-way fan-out + join", "Fanout5_NoStore",
                                            "Fanout5_Journal")):
        lgv = vals("langgraph", shape, "us_per_run")
        out.append(f"| {label} | {spread(engine.get(nostore, []), 1)} µs | "
                   f"{spread(engine.get(journal, []), 1)} µs | {spread(lgv)} µs | "
                   f"{NEOGRAPH[shape]} µs | {fmt(LANGGRAPH_PUBLISHED[shape])} µs |")
        ours = med(engine.get(nostore, []))
        if ours is not None:
            targets.append((f"engine overhead, {label}", f"{fmt(ours, 1)} µs",
                            f"< {NEOGRAPH[shape]} µs (NeoGraph)", ours < NEOGRAPH[shape]))
    out.append("")

    # 2–5. HTTP workloads
    impls = [("curl", "raw libcurl"), ("troupe", "troupe"), ("troupe-journal", "troupe + journal (sync)"),
             ("langgraph", "LangGraph.js"), ("langgraph-sqlite", "LangGraph.js + SQLite checkpointer")]
    out.append("## HTTP workloads (openai plugin → nginx fixed-latency server on loopback)\n")
    out.append("W1: 200 workflows one after another × 10 sequential calls, 0 ms latency. "
               "W2: 1,000 workflows at once × (10 parallel calls + 1 join call), 100 ms. "
               "W3: 10,000 single-call workflows at once, 1,000 ms.\n")
    out.append("| workload | client | µs per call | wall ms | CPU ms | peak RSS MB | p50 / p99 ms "
               "| failures | wall vs curl | CPU vs curl | RSS vs curl |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in ("W1", "W2", "W3"):
        cw, cc, cr = m("curl", w, "wall_ms"), m("curl", w, "cpu_ms"), m("curl", w, "peak_rss_kb")
        for impl, label in impls:
            if (impl, w) not in rows:
                continue
            rss = [v / 1024 for v in vals(impl, w, "peak_rss_kb")]
            fails = sum(vals(impl, w, "failures"))
            p50, p99 = m(impl, w, "p50_ms"), m(impl, w, "p99_ms")
            out.append(
                f"| {w} | {label} | {spread(vals(impl, w, 'per_step_us'), 1)} | "
                f"{spread(vals(impl, w, 'wall_ms'))} | {spread(vals(impl, w, 'cpu_ms'))} | "
                f"{spread(rss)} | {fmt(p50, 1)} / {fmt(p99, 1)} | {fails} | "
                f"{rfmt(ratio(m(impl, w, 'wall_ms'), cw))} | {rfmt(ratio(m(impl, w, 'cpu_ms'), cc))} | "
                f"{rfmt(ratio(m(impl, w, 'peak_rss_kb'), cr))} |")
    out.append("")
    out.append("Ideal wall time (latency alone): W2 200 ms, W3 1,000 ms.\n")

    # Targets on the HTTP workloads.
    w1 = ratio(m("troupe", "W1", "per_step_us"), m("curl", "W1", "per_step_us"))
    w1j = ratio(m("troupe-journal", "W1", "per_step_us"), m("curl", "W1", "per_step_us"))
    if w1 is not None:
        targets.append(("W1 per-step wall vs raw libcurl", rfmt(w1), "≤ 1.15×", w1 <= 1.15))
    if w1j is not None:
        targets.append(("W1 with synchronous journaling vs raw libcurl", rfmt(w1j), "≤ 1.3×", w1j <= 1.3))
    for w in ("W2", "W3"):
        for key, label, limit in (("wall_ms", "wall", 1.2), ("cpu_ms", "CPU", 1.5),
                                  ("peak_rss_kb", "peak RSS", 1.5)):
            x = ratio(m("troupe", w, key), m("curl", w, key))
            if x is not None:
                targets.append((f"{w} {label} vs raw libcurl multi", rfmt(x), f"≤ {limit}×", x <= limit))
        if ("troupe", w) in rows:
            fails = sum(vals("troupe", w, "failures")) + sum(vals("troupe-journal", w, "failures"))
            targets.append((f"{w} failures (troupe, both variants)", str(fails), "0", fails == 0))
        lgw = m("langgraph", w, "wall_ms")
        x = ratio(lgw, m("troupe", w, "wall_ms"))
        if x is not None:
            targets.append((f"{w} wall: LangGraph.js / troupe", rfmt(x), "≥ 20×", x >= 20))

    # Durability cost
    out.append("## Durability cost (W1)\n")
    nj, j = m("troupe", "W1", "per_step_us"), m("troupe-journal", "W1", "per_step_us")
    out.append("| | µs per step |\n|---|---|")
    out.append(f"| not journaled | {spread(vals('troupe', 'W1', 'per_step_us'), 1)} |")
    out.append(f"| every step journaled, committed before the workflow goes on | "
               f"{spread(vals('troupe-journal', 'W1', 'per_step_us'), 1)} |")
    if nj and j:
        out.append(f"| cost of the journal | {fmt(j - nj, 1)} µs per step ({rfmt(j / nj)}) |")
    out.append("")

    # Durability cost without I/O (bench_durability)
    dur = load_durability(a.durability)
    if dur:
        out.append("## Durability cost (bench_durability: 100 sequential mock calls at zero latency, "
                   "SQLite store in a temp folder)\n")
        out.append("| | figure | journal's cost per step |\n|---|---|---|")
        base = med(dur.get("Step_NoStore", []))
        for key, label in (("Step_NoStore", "µs per step, no store"),
                           ("Step_JournalSync", "µs per step, journal at `durability: sync`"),
                           ("Step_JournalAsync", "µs per step, journal at `durability: async`")):
            v = med(dur.get(key, []))
            cost = "" if key == "Step_NoStore" or v is None or base is None else f"{fmt(v - base, 1)} µs"
            out.append(f"| {label} | {spread(dur.get(key, []), 1)} | {cost} |")
        out.append(f"| resume of a 1,000-step run, every step served | {spread(dur['resume_ms'], 1)} ms "
                   f"({fmt(med(dur['served_us']), 1)} µs per served step) | |")
        out.append(f"| bytes stored per step: the store's main file (steps, their events, "
                   f"indexes; after a checkpoint) | {spread(dur['store_bytes'])} B | |")
        out.append(f"| bytes stored per step: the step rows alone | {spread(dur['row_bytes'])} B | |")
        out.append("")

    # Cold start
    if a.cold and os.path.exists(a.cold):
        with open(a.cold) as f:
            cold = json.load(f)["results"]
        out.append("## Cold start (whole process, one call to the 0 ms endpoint; hyperfine)\n")
        out.append("| command | median ms | min–max ms |\n|---|---|---|")
        by = {}
        for res in cold:
            ms = [t * 1000 for t in res["times"]]
            by[res["command"]] = med(ms)
            out.append(f"| {res['command']} | {med(ms):.1f} | {min(ms):.1f}–{max(ms):.1f} |")
        out.append("")
        if "troupe run" in by:
            targets.append(("cold start of `troupe run` (one-step workflow)", f"{by['troupe run']:.1f} ms",
                            "≤ 20 ms", by["troupe run"] <= 20))

    # Memory per suspended run
    per = vals("troupe", "suspended", "bytes_per_run")
    if per:
        out.append("## Memory per suspended run (10,000 runs waiting on a timer; RSS growth / 10,000)\n")
        out.append(f"{spread(per)} bytes per run.\n")
        targets.append(("memory per suspended run", f"{fmt(med(per))} B", "≤ 4,096 B", med(per) <= 4096))

    out.append("## Targets\n")
    out.append("| target | measured | goal | |\n|---|---|---|---|")
    for what, fig, goal, ok in targets:
        out.append(f"| {what} | {fig} | {goal} | {verdict(ok)} |")
    out.append("")
    if a.listen_drops > 0:
        out.append(f"Warning: the kernel dropped {a.listen_drops} connection attempts from a full "
                   "accept queue during the run (TcpExtListenOverflows); each costs the client a 1 s "
                   "retransmit, so W2/W3 walls include them.\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
