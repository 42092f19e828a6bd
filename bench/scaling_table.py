#!/usr/bin/python3
"""Tables of bench/run_scaling.sh from its results.tsv (plain python3).

    scaling_table.py results.tsv [--max-others CORES] [--max-probe SECONDS]

--max-others drops the runs during which other processes used more than CORES cores (the
others_cores column of run_scaling.sh): the machine is shared, and a run that competed
for the cores says little about dprune.
--max-probe drops the rounds whose speed probe (probes.tsv beside results.tsv: a single-thread
vgg16 step on each core at once, before the round and after each of its runs) took more than
SECONDS on either core: the host's other guests slow this VM down without any trace inside
it. Without the option the probes are still listed, round by round, beside each round's
efficiency.

Throughput: median over rounds of each run's median window (img/s). Ratios are paired per
round (the runs of one round ran back to back) and the median over rounds is shown, with the
range over rounds in brackets."""
import argparse
import csv
import os
import statistics
from collections import defaultdict


def read_probes(results_path):
    """round -> [probe before, slowest probe after one of its runs], in seconds per step (the
    slower core's); the last 'before' counts (a gated round may have probed while waiting)."""
    path = os.path.join(os.path.dirname(os.path.abspath(results_path)), "probes.tsv")
    probes = defaultdict(lambda: [None, None])
    if os.path.exists(path):
        for r in csv.DictReader(open(path), delimiter="\t"):
            if r["step_s"] in ("", "NA"):
                continue
            p, v = probes[r["round"]], float(r["step_s"])
            if r["when"] == "before":
                p[0] = v
            else:
                p[1] = v if p[1] is None else max(p[1], v)
    return probes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--max-others", type=float)
    ap.add_argument("--max-probe", type=float)
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.results), delimiter="\t"))
    probes = read_probes(args.results)
    if args.max_others is not None:
        kept = [r for r in rows if float(r.get("others_cores") or 0) <= args.max_others]
        print(f"(runs during which other processes used > {args.max_others} cores dropped: "
              f"{len(rows) - len(kept)} of {len(rows)})\n")
        rows = kept
    if args.max_probe is not None:
        slow = lambda rnd: any(p is None or p > args.max_probe for p in probes[rnd])
        dropped = sorted({r["round"] for r in rows if slow(r["round"])}, key=int)
        print(f"(rounds whose speed probe took > {args.max_probe} s per step, or was missing, "
              f"dropped: {', '.join(dropped) or 'none'})\n")
        rows = [r for r in rows if r["round"] not in dropped]
    ips = defaultdict(dict)   # (impl, model, setting, transport, overlap) -> round -> ips
    wait = defaultdict(dict)
    for r in rows:
        key = (r["impl"], r["model"], r["setting"], r["transport"], r["overlap"])
        ips[key][r["round"]] = float(r["ips"])
        if r["comm_wait_ms"] != "NA":
            wait[key][r["round"]] = float(r["comm_wait_ms"])

    def med(d, key):
        v = list(d.get(key, {}).values())
        return statistics.median(v) if v else None

    def ratio(a, b, fa=1.0, fb=1.0):
        da, db = ips.get(a, {}), ips.get(b, {})
        rs = [fa * da[k] / (fb * db[k]) for k in da if k in db]
        if not rs:
            return "n/a"
        return f"{statistics.median(rs):.3f} [{min(rs):.2f}-{max(rs):.2f}]"

    def fmt(x, spec=".1f"):
        return "n/a" if x is None else format(x, spec)

    others = [float(r["others_cores"]) for r in rows if r.get("others_cores") not in (None, "")]
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != "resnet20", m))
    rounds = len({r["round"] for r in rows})
    print(f"Throughput (img/s, global batch: resnet20 128, vgg16 64; median of {rounds} rounds)\n")
    print("| model | impl | 1x1 | 1x2 | 2x1 | 2x1 / 1x2 | efficiency 2x1 / (2 x 1x1) |")
    print("|---|---|---|---|---|---|---|")
    # dprune's 2x1 with its default route (shm: the shared-memory window) and with MPI over
    # the shared-memory BTL (vader); both against the same 1x1 / 1x2 runs
    labels = {"shm": "dprune", "vader": "dprune, dist.allreduce = mpi", "tcp-gloo": "PyTorch DDP (gloo)"}
    for m in models:
        for impl, tr in (("dprune", "shm"), ("dprune", "vader"), ("ddp", "tcp-gloo")):
            one = lambda s: (impl, m, s, "tcp-gloo" if impl == "ddp" else "shm", "true")
            two = (impl, m, "2x1", tr, "true")
            if not ips.get(two):
                continue
            print(f"| {m} | {labels[tr]} "
                  f"| {fmt(med(ips, one('1x1')))} | {fmt(med(ips, one('1x2')))} "
                  f"| {fmt(med(ips, two))} | {ratio(two, one('1x2')) if impl == 'dprune' else '-'} "
                  f"| {ratio(two, one('1x1'), 1.0, 2.0)} |")
    if others:
        print(f"\nOther processes on the machine during the runs: median {statistics.median(others):.2f} "
              f"cores, max {max(others):.2f} (of 2); runs with > 0.3: "
              f"{sum(o > 0.3 for o in others)} of {len(others)}")
    if probes:
        print_rounds(rows, ips, probes, models)
    print("\ndprune / DDP absolute throughput (paired per round)\n")
    print("| model | 1x1 | 2x1 |")
    print("|---|---|---|")
    for m in models:
        d = lambda s: ("dprune", m, s, "shm", "true")
        p = lambda s: ("ddp", m, s, "tcp-gloo", "true")
        if ips.get(p("1x1")) or ips.get(p("2x1")):
            print(f"| {m} | {ratio(d('1x1'), p('1x1'))} | {ratio(d('2x1'), p('2x1'))} |")
    tcp = [(m, ov) for m in models for ov in ("true", "false")
           if ips.get(("dprune", m, "2x1", "tcp", ov))]
    if tcp or any(wait.get(("dprune", m, "2x1", "shm", "true")) for m in models):
        print("\nTime blocked waiting for gradient communication (rank 0, comm_wait_ms per step, "
              "median)\n")
        print("| model | transport | dist.overlap | img/s | comm_wait ms/step |")
        print("|---|---|---|---|---|")
        for m in models:
            for tr, ov in (("shm", "true"), ("vader", "true"), ("tcp", "true"), ("tcp", "false"),
                           ("tcp-wd0", "true"), ("tcp-wd0", "false")):
                k = ("dprune", m, "2x1", tr, ov)
                if ips.get(k):
                    print(f"| {m} | {tr} | {ov} | {fmt(med(ips, k))} | {fmt(med(wait, k), '.1f')} |")
        for m, tr in ((m, tr) for m in models for tr in ("tcp", "tcp-wd0")):
            a, b = ("dprune", m, "2x1", tr, "true"), ("dprune", m, "2x1", tr, "false")
            wa, wb = wait.get(a, {}), wait.get(b, {})
            rs = [1 - wa[k] / wb[k] for k in wa if k in wb and wb[k] > 0]
            if rs:
                print(f"\n{m} over {tr}: hidden fraction 1 - wait(overlap) / wait(blocking) = "
                      f"{statistics.median(rs):.3f} per-round median [{min(rs):.2f}-{max(rs):.2f}]; "
                      f"from medians {1 - med(wait, a) / med(wait, b):.3f}")


def print_rounds(rows, ips, probes, models):
    """Each round's speed probes beside its efficiencies, so a slow host shows next to the
    figures it touched."""
    print("\nRound by round: speed probe (single-thread vgg16 step on each core at once, the "
          "slower core's s) and dprune's efficiency\n")
    print("| round | probe before | slowest probe after a run | "
          + " | ".join(f"{m} 2x1/(2 x 1x1)" for m in models) + " |")
    print("|---" * (3 + len(models)) + "|")
    for rnd in sorted({r["round"] for r in rows}, key=int):
        effs = []
        for m in models:
            one = ips.get(("dprune", m, "1x1", "shm", "true"), {})
            two = ips.get(("dprune", m, "2x1", "shm", "true"), {})
            effs.append(f"{two[rnd] / (2 * one[rnd]):.3f}" if rnd in one and rnd in two else "-")
        b, a = probes[rnd]
        f = lambda x: "-" if x is None else f"{x:.3f}"
        print(f"| {rnd} | {f(b)} | {f(a)} | " + " | ".join(effs) + " |")


if __name__ == "__main__":
    main()
