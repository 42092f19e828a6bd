#!/usr/bin/python3
"""Scaling model of dprune's data-parallel step (NOTES.md, "Distributed performance (issue 3)").
Plain python3, no numpy.

    scaling_model.py RUN_DIR [--dprune build-dist/dprune]

RUN_DIR is what bench/run_scaling.sh wrote: results.tsv (img/s and comm_wait per setting),
allreduce_shm.txt and allreduce_tcp.txt (bench_allreduce tables), resnet50.txt (the
RESULT line of bench_train_step for resnet50). Layer sizes and FLOPs come from
`dprune summary` (the model's own tensors, in the order the gradient buffer holds them).

The model of one step on W ranks with a per-rank batch b:
  compute   T_c = b * t_img            t_img = 1 / (1x1 img/s), measured (one core)
  backward  T_b = 2/3 T_c, spread over the layers in proportion to their MACs (conv/linear:
            dX and dW, the first layer dW only); a layer's gradients are final when its
            backward ends
  buckets   exactly as src/dist/grad_sync.c forms them (reverse topological order, whole
            layers: a head >= first_bucket_mb, a tail from the lowest layers doubling from
            first_bucket_mb while below bucket_mb, between them >= bucket_mb); bucket k can be
            posted when its lowest layer is done; buckets go through the network one after
            another: start_k = max(ready_k, end_{k-1}), end_k = start_k + t_ar(bytes_k)
  overlap   wait = max(0, end_last - T_b);  step = T_c + cpu + wait
  blocking  wait = t_ar(all gradient bytes);  step = T_c + wait
  cpu       the allreduce's work on the cores that compute, which overlap cannot hide: on a
            cluster with RDMA only the local sums, (W-1)/W n gamma; over TCP also the kernel's
            copies of what is sent and received, 2 (W-1)/W n c_copy. On this machine (2 ranks
            on 2 cores, shared memory or loopback TCP) every byte of the allreduce is moved and
            summed by the two computing cores themselves, so cpu = t_ar(all gradient bytes)
            and the timeline has nothing left to hide: step = T_c + t_ar(all) in both modes.
            (Measured: over TCP overlap 139.1 img/s against blocking 141.8, session 4.)
  t_ar      on this machine (W = 2): the measured MPI_Iallreduce table (log-log interpolation);
            on a cluster: alpha-beta-gamma of the allreduce algorithm (below).
Reproduction (W = 2 here) first, then the ResNet-50/ImageNet predictions."""
import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ------------------------------------------------------------------ inputs


def summary_layers(dprune, arch, data_root):
    """[(name, op, params, macs)] in forward order, from `dprune summary` (which opens the
    data set: the CIFAR-10 subset, or the ImageFolder sample with 1000 classes for ImageNet)"""
    if arch in ("resnet18", "resnet34", "resnet50"):
        data = (f'dataset = "imagefolder"; path = "{data_root}/imagefolder-sample"; '
                f'image_size = 224;')
        model = f'arch = "{arch}"; num_classes = 1000;'
    else:
        data = f'dataset = "cifar10"; path = "{data_root}/cifar10-subset";'
        model = f'arch = "{arch}";'
    text = (f'run: {{ dir = "/tmp"; }};\ndata: {{ {data} }};\nmodel: {{ {model} }};\n'
            f'train: {{ epochs = 1; }};\n')
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        out = subprocess.run([dprune, "summary", path], capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    layers = []
    for line in out.stdout.splitlines():
        m = re.match(r"^(\S+)\s+(\S+)\s+\S+\s+([\d,]+)\s+([\d,]+)\s*$", line)
        if m and m.group(1) != "layer":
            layers.append((m.group(1), m.group(2), int(m.group(3).replace(",", "")),
                           int(m.group(4).replace(",", ""))))
    if not layers:
        sys.exit(f"cannot parse `dprune summary` for {arch}:\n{out.stdout}{out.stderr}")
    return layers


def read_allreduce(path):
    """{bytes: seconds} of the MPI_Iallreduce column (what dprune posts)"""
    t = {}
    for line in open(path):
        f = line.split()
        if len(f) == 6 and f[1].isdigit():
            t[int(f[1])] = float(f[2]) * 1e-6
    return t


def read_results(path, max_others=None):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    head, rows = rows[0], rows[1:]
    by = {}
    for r in rows:
        d = dict(zip(head, r))
        if max_others is not None and float(d.get("others_cores") or 0) > max_others:
            continue
        key = (d["impl"], d["model"], d["setting"], d["transport"], d["overlap"])
        by.setdefault(key, []).append(d)
    med = {}
    for k, v in by.items():
        med[k] = (statistics.median(float(d["ips"]) for d in v),
                  statistics.median(float(d["comm_wait_ms"]) for d in v
                                    if d["comm_wait_ms"] != "NA") if v[0]["comm_wait_ms"] != "NA"
                  else None, len(v))
    return med


# ------------------------------------------------------------------ the model


def buckets_of(layers, first_mb=1.0, bucket_mb=25.0):
    """[(bytes, index of the lowest (earliest) layer)] in posting order, as grad_sync.c forms
    them: a head of >= first_mb, a tail built from the lowest layers with limits first_mb,
    2 first_mb, 4 first_mb, ... while below bucket_mb, the middle greedily >= bucket_mb"""
    units = [(layers[i][2], i) for i in range(len(layers) - 1, -1, -1) if layers[i][2] > 0]
    first, big = max(first_mb * 1e6 / 4, 1), bucket_mb * 1e6 / 4

    def fill_forward(a, b, limit):
        e, n = a + 1, units[a][0]
        while e < b and n < limit:
            n += units[e][0]
            e += 1
        return e

    def fill_backward(a, b, limit):
        s, n = b - 1, units[b - 1][0]
        while s > a and n < limit:
            s -= 1
            n += units[s][0]
        return s

    if not units:
        return []
    n = len(units)
    head = fill_forward(0, n, first)
    tail, lo, limit = [], n, first  # tail bucket starts, the last bucket's first
    while limit < big and lo > head:
        lo = fill_backward(head, lo, limit)
        tail.append(lo)
        limit *= 2
    cuts, a = [0, head], head
    while a < lo:  # the middle ends where the tail starts
        a = fill_forward(a, lo, big)
        cuts.append(a)
    cuts += tail[::-1][1:] + [n] if tail else ([n] if cuts[-1] != n else [])
    out = []
    for a, b in zip(cuts, cuts[1:]):
        out.append((4 * sum(u[0] for u in units[a:b]), min(u[1] for u in units[a:b])))
    return out


def backward_done_times(layers, t_b):
    """time since the start of backward at which each layer's backward has finished"""
    first_param = next(i for i, l in enumerate(layers) if l[2] > 0)
    w = [(2 if i != first_param else 1) * l[3] for i, l in enumerate(layers)]
    total = float(sum(w))
    done, t = [0.0] * len(layers), 0.0
    for i in range(len(layers) - 1, -1, -1):
        t += t_b * w[i] / total
        done[i] = t
    return done


def exposed_wait(layers, t_c, t_ar, first_mb=1.0, bucket_mb=25.0):
    t_b = 2.0 / 3.0 * t_c
    done = backward_done_times(layers, t_b)
    end = 0.0
    for nbytes, low in buckets_of(layers, first_mb, bucket_mb):
        end = max(done[low], end) + t_ar(nbytes)
    return max(0.0, end - t_b)


def interp(table):
    xs = sorted(table)

    def t(n):
        if n <= xs[0]:
            return table[xs[0]]
        for a, b in zip(xs, xs[1:]):
            if n <= b:
                f = (math.log(n) - math.log(a)) / (math.log(b) - math.log(a))
                return math.exp(math.log(table[a]) * (1 - f) + math.log(table[b]) * f)
        a, b = xs[-2], xs[-1]  # beyond the table: the last slope
        return table[b] + (n - b) * (table[b] - table[a]) / (b - a)
    return t


def fit_alpha_beta(table, world=2, min_bytes=1 << 20):
    """t = alpha + f n beta, f = 2(W-1)/W: alpha from sizes <= 256 B, beta by least squares
    over sizes >= min_bytes (the bucket range)"""
    f = 2.0 * (world - 1) / world
    alpha = statistics.median(v for k, v in table.items() if k <= 256)
    pts = [(f * k, v) for k, v in table.items() if k >= min_bytes]
    n = len(pts)
    sx, sy = sum(p[0] for p in pts), sum(p[1] for p in pts)
    sxx, sxy = sum(p[0] ** 2 for p in pts), sum(p[0] * p[1] for p in pts)
    beta = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return alpha, beta


def cluster_allreduce(alg, world, alpha, beta, gamma):
    """alpha-beta-gamma time of one allreduce of n bytes on `world` ranks"""
    lg = math.log2(world)
    if alg == "binomial":  # libnbc's default with MPI_IN_PLACE: reduce to rank 0, then bcast
        return lambda n: 2 * lg * (alpha + n * beta) + lg * n * gamma
    if alg == "rabenseifner":  # reduce-scatter + allgather by recursive halving/doubling
        return lambda n: 2 * lg * alpha + 2 * (world - 1) / world * n * beta + \
            (world - 1) / world * n * gamma
    if alg == "ring":
        return lambda n: 2 * (world - 1) * alpha + 2 * (world - 1) / world * n * beta + \
            (world - 1) / world * n * gamma
    raise ValueError(alg)


# ------------------------------------------------------------------ report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--dprune", default=os.path.join(ROOT, "build-dist", "dprune"))
    ap.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data"))
    ap.add_argument("--max-others", type=float, default=None,
                    help="drop runs during which other processes used more cores than this")
    ap.add_argument("--first-mb", type=float, default=1.0)
    ap.add_argument("--bucket-mb", type=float, default=25.0)
    a = ap.parse_args()
    d = a.run_dir
    res = read_results(os.path.join(d, "results.tsv"), a.max_others)
    shm = read_allreduce(os.path.join(d, "allreduce_shm.txt"))
    tcp = read_allreduce(os.path.join(d, "allreduce_tcp.txt"))
    batch = {"resnet20": 128, "vgg16": 64}
    layers = {m: summary_layers(a.dprune, m, a.data) for m in batch}
    layers["resnet50"] = summary_layers(a.dprune, "resnet50", a.data)

    print("## Inputs\n")
    print("| model | parameters | gradient MB | buckets (MB, in posting order) |")
    print("|---|---|---|---|")
    for m, ls in layers.items():
        p = sum(l[2] for l in ls)
        bs = buckets_of(ls, a.first_mb, a.bucket_mb)
        print(f"| {m} | {p:,} | {4 * p / 1e6:.1f} | "
              + ", ".join(f"{b / 1e6:.2f}" for b, _ in bs) + " |")
    print()
    print("| transport | alpha (us) | beta (ns/B) | bus bandwidth (GB/s) | fitted on |")
    print("|---|---|---|---|---|")
    fits = {}
    for name, tab in (("shm", shm), ("tcp", tcp)):
        al, be = fit_alpha_beta(tab)
        fits[name] = (al, be)
        print(f"| {name} (Iallreduce, 2 ranks) | {al * 1e6:.2f} | {be * 1e9:.3f} | {1e-9 / be:.2f} "
              f"| alpha: sizes <= 256 B; beta: least squares, sizes >= 1 MiB |")

    # ---- reproduction on this machine (W = 2)
    print("\n## Reproduction: 2 ranks x 1 thread on this machine\n")
    print("t_img from the 1x1 run of the same rounds; t_ar = measured Iallreduce table "
          "(in brackets: with the alpha-beta fit instead).\n")
    print("| model | transport | overlap | 1x1 img/s | measured 2x1 img/s | model img/s | error "
          "| measured wait ms | model wait ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for m in batch:
        one = res.get(("dprune", m, "1x1", "shm", "true"))
        if not one:
            continue
        t_img = 1.0 / one[0]
        # the model is of MPI's allreduce: dprune's 2x1 runs with dist.allreduce = mpi over
        # shared memory ("vader"; "shm" in results from before the window route existed) and TCP
        routes = [("vader", "true"), ("tcp", "true"), ("tcp", "false"), ("tcp-wd0", "true"),
                  ("tcp-wd0", "false")]
        if not res.get(("dprune", m, "2x1", "vader", "true")):
            routes = [("shm", "true"), ("shm", "false")] + routes
        for tr, ov in routes:
            meas = res.get(("dprune", m, "2x1", tr, ov))
            if not meas:
                continue
            tab = shm if tr in ("shm", "vader") else tcp
            al, be = fits["shm" if tr in ("shm", "vader") else "tcp"]
            t_c = batch[m] / 2 * t_img
            out = []
            for t_ar in (interp(tab), lambda n, al=al, be=be: al + n * be):
                # no idle core: the whole allreduce is CPU time of the computing cores (cpu =
                # t_ar(all)), so in overlap mode the timeline's wait is part of it, not extra
                t_all = t_ar(4 * sum(l[2] for l in layers[m]))
                if ov == "true":
                    w = exposed_wait(layers[m], t_c, t_ar, a.first_mb, a.bucket_mb)
                else:
                    w = t_all
                out.append((batch[m] / (t_c + t_all), w))
            err = out[0][0] / meas[0] - 1
            worst = max(worst, abs(err))
            print(f"| {m} | {tr} | {ov} | {one[0]:.1f} | {meas[0]:.1f} | {out[0][0]:.1f} "
                  f"[{out[1][0]:.1f}] | {100 * err:+.0f}% | {meas[1]:.1f} | {1e3 * out[0][1]:.1f} "
                  f"[{1e3 * out[1][1]:.1f}] |")
    print(f"\nworst step-time error of the model: {100 * worst:.0f}% (target: within 20%)")

    # ---- ResNet-50 / ImageNet predictions
    r50 = open(os.path.join(d, "resnet50.txt")).read()
    m = re.search(r"ips=([\d.]+)", r50)
    core_ips = float(m.group(1))
    cores, par_eff = 32, 0.8
    node_ips = core_ips * cores * par_eff
    print("\n## Prediction: ResNet-50 on ImageNet (224x224, 1000 classes)\n")
    print(f"Compute: measured here {core_ips:.2f} img/s on one core (bench_train_step resnet50, "
          f"1 thread); assumed node: {cores} such cores in one rank (OpenMP), parallel "
          f"efficiency {par_eff} -> {node_ips:.1f} img/s per node (t_img = "
          f"{1e3 / node_ips:.1f} ms). One rank per node.\n")
    gamma = 0.1e-9
    # (name, alpha, beta, kernel copy cost per byte on the node's cores: 0 with RDMA)
    nets = [("25 Gbit/s Ethernet (TCP)", 30e-6, 1 / 2.8e9, 0.1e-9),
            ("100 Gbit/s InfiniBand EDR (UCX)", 2e-6, 1 / 11.5e9, 0.0)]
    print("| network | alpha | beta (link GB/s) | gamma (local sum) | c_copy (kernel copies) |")
    print("|---|---|---|---|---|")
    for name, al, be, cc in nets:
        print(f"| {name} | {al * 1e6:.0f} us | {be * 1e9:.3f} ns/B ({1e-9 / be:.1f}) "
              f"| {gamma * 1e9:.2f} ns/B | {cc * 1e9:.2f} ns/B |")
    print()
    print("| network | allreduce | ranks | per-rank batch (global) | compute ms | allreduce of "
          "all gradients ms | its CPU work ms | exposed wait ms | step ms | img/s | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ls = layers["resnet50"]
    total_bytes = 4 * sum(l[2] for l in ls)
    for name, al, be, cc in nets:
        for alg in ("rabenseifner", "binomial"):
            for world in (16, 64):
                for b in (64, 256 // world):
                    t_ar = cluster_allreduce(alg, world, al, be, gamma)
                    f = (world - 1) / world if alg != "binomial" else math.log2(world)
                    cpu = f * total_bytes * (gamma + 2 * cc)
                    t_c = b / node_ips
                    w = exposed_wait(ls, t_c, t_ar, a.first_mb, a.bucket_mb)
                    step = t_c + cpu + w
                    print(f"| {name} | {alg} | {world} | {b} ({b * world}) | {1e3 * t_c:.0f} "
                          f"| {1e3 * t_ar(total_bytes):.0f} | {1e3 * cpu:.0f} | {1e3 * w:.0f} "
                          f"| {1e3 * step:.0f} | {b * world / step:.0f} | {t_c / step:.2f} |")


if __name__ == "__main__":
    main()
