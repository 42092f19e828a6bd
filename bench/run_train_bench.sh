#!/usr/bin/env bash
# Training-step throughput of dprune against PyTorch (oneDNN and im2col paths), interleaved
# round-robin so that a noisy neighbour slows all three alike, then a table of medians.
#
#   bench/run_train_bench.sh [-r ROUNDS] [-t THREADS] [-m "MODEL ..."] [-b BUILD_DIR] [--as-set]
#
#   -r ROUNDS   rounds (default 5); each round runs every (model, implementation) once, and
#               each run reports the median of its timed steps after warm-up. The table shows
#               the median over rounds of those per-run medians.
#   -t THREADS  threads for dprune and PyTorch (default 2). On the two small nets PyTorch also
#               runs with 1 thread and the table uses its faster setting.
#   -m MODELS   subset of: fmnist_cnn lenet5 vgg16 resnet20 resnet56 resnet50 (default all)
#   -b DIR      build directory holding bench/bench_train_step (default build-bench)
#   --as-set    keep this machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE. By default both are
#               unset for the runs, as on a user's machine (OpenBLAS then picks its own core).
#
# Raw RESULT lines go to $OUT (default /tmp/dprune_bench.<pid>.log). A full run (5 rounds, all
# models, 2 threads) takes about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5 THREADS=2 BUILD=build-bench AS_SET=0
MODELS="fmnist_cnn lenet5 vgg16 resnet20 resnet56 resnet50"
while [ $# -gt 0 ]; do
    case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -t) THREADS=$2; shift 2 ;;
    -m) MODELS=$2; shift 2 ;;
    -b) BUILD=$2; shift 2 ;;
    --as-set) AS_SET=1; shift ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
BIN=$BUILD/bench/bench_train_step
SGEMM=$BUILD/bench/bench_sgemm
PY=/usr/bin/python3
OUT=${OUT:-/tmp/dprune_bench.$$.log}
[ -x "$BIN" ] && [ -x "$SGEMM" ] || {
    echo "build first: cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release &&" \
        "cmake --build $BUILD -j1 --target bench_train_step bench_sgemm" >&2
    exit 1
}
if [ $AS_SET = 1 ]; then ENVP=(env); else ENVP=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE); fi

# model -> batch, warm-up steps, timed steps per run
batch_of() { case $1 in vgg16) echo 64 ;; resnet50) echo 16 ;; *) echo 128 ;; esac; }
steps_of() { case $1 in fmnist_cnn | lenet5) echo "3 7" ;; resnet50) echo "1 2" ;; *) echo "1 3" ;; esac; }
small() { [ "$1" = fmnist_cnn ] || [ "$1" = lenet5 ]; }

run() { # label, command... ; appends the RESULT line (with the label) to $OUT
    local label=$1; shift
    local line
    line=$("$@" 2>/dev/null | grep '^RESULT' || true)
    [ -n "$line" ] || { echo "FAILED: $*" >&2; return 0; }
    echo "$line run=$label" >>"$OUT"
    echo "  $line" >&2
}

: >"$OUT"
echo "env: ${ENVP[*]}; threads $THREADS; rounds $ROUNDS; log $OUT" >&2
for r in $(seq 1 "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    run sgemm "${ENVP[@]}" "$SGEMM" 2048 "$THREADS" 5
    for m in $MODELS; do
        B=$(batch_of "$m")
        read -r WU IT <<<"$(steps_of "$m")"
        # rotate the order inside the round so no implementation always runs first
        impls=(dprune onednn im2col)
        k=$(((r - 1) % 3))
        order=("${impls[@]:k}" "${impls[@]:0:k}")
        for impl in "${order[@]}"; do
            case $impl in
            dprune) run "$m" "${ENVP[@]}" "$BIN" "$m" "$B" "$THREADS" "$WU" "$IT" ;;
            onednn | im2col)
                local_env=("${ENVP[@]}")
                [ "$impl" = im2col ] && local_env+=(OPENBLAS_NUM_THREADS=1)
                run "$m" "${local_env[@]}" "$PY" bench/peer_train_step.py "$m" "$B" "$THREADS" \
                    "$impl" "$WU" "$IT"
                if small "$m" && [ "$THREADS" != 1 ]; then
                    run "$m" "${local_env[@]}" "$PY" bench/peer_train_step.py "$m" "$B" 1 \
                        "$impl" "$WU" "$IT"
                fi
                ;;
            esac
        done
    done
done

# Table: median over rounds of each run's median, and the best run (contention only ever slows
# a run down, so on a busy machine the best is the better estimate of the uncontended speed).
# util = dprune's CPU seconds / (wall seconds x threads), median over runs: near 1.0 the
# threads had their cores; well below, the machine was busy and the figures are noise.
"$PY" - "$OUT" "$THREADS" <<'EOF'
import collections, statistics, sys
path, threads = sys.argv[1], int(sys.argv[2])
runs = collections.defaultdict(list)  # (impl, model, threads) -> [ips]
cores, sgemm, util = set(), [], collections.defaultdict(list)
for line in open(path):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    cores.add(kv.get("core", "?"))
    if kv["impl"] == "sgemm":
        sgemm.append(float(kv["gflops"]))
        continue
    key = (kv["impl"], kv["model"], int(kv["threads"]))
    runs[key].append(float(kv["ips"]))
    if kv["impl"] == "dprune":
        runs[("dprune-gflops",) + key[1:]].append(float(kv["gflops"]))
        if "cpu_s" in kv:  # CPU seconds per wall second / threads: 1.0 = had its cores
            util[key[1]].append(float(kv["cpu_s"]) / float(kv["median_s"]) / key[2])
def stat(v, how): return statistics.median(v) if how == "median" else max(v)
def best_threads(impl, m, how):  # PyTorch at its best thread setting (1 or `threads`)
    c = [(stat(v, how), k[2]) for k, v in runs.items() if k[0] == impl and k[1] == m]
    return max(c) if c else (float("nan"), 0)
models = []
for k in runs:
    if k[0] == "dprune" and k[1] not in models: models.append(k[1])
batches = {"vgg16": 64, "resnet50": 16}
print(f"OpenBLAS core: {', '.join(sorted(cores))}; threads {threads}; sgemm 2048^3 GFLOP/s "
      f"median {statistics.median(sgemm):.1f}, best {max(sgemm):.1f} "
      f"(all: {' '.join(f'{g:.0f}' for g in sgemm)})")
for how in ("median", "best"):
    print(f"\n{how} of {len(sgemm)} interleaved runs (images/s; @1t = PyTorch faster with 1 thread)")
    print(f"{'model':<11} {'batch':>5} {'dprune':>9} {'oneDNN':>12} {'im2col':>12} "
          f"{'x oneDNN':>8} {'x im2col':>8} {'GFLOP/s':>8} {'util':>5}")
    for m in models:
        d = stat(runs[("dprune", m, threads)], how)
        o, ot = best_threads("torch-onednn", m, how)
        i, it = best_threads("torch-im2col", m, how)
        g = stat(runs[("dprune-gflops", m, threads)], how)
        u = statistics.median(util[m]) if util[m] else float("nan")
        ts = lambda t: "" if t == threads else "@1t"
        print(f"{m:<11} {batches.get(m, 128):>5} {d:>9.1f} {o:>9.1f}{ts(ot):<3} "
              f"{i:>9.1f}{ts(it):<3} {d / o:>7.2f}x {d / i:>7.2f}x {g:>8.1f} {u:>5.2f}")
        if m == "vgg16" and sgemm:
            print(f"  vgg16 step at {100 * g / stat(sgemm, how):.0f}% of the {how} sgemm GFLOP/s "
                  f"(conv+linear MACs x 2 FLOPs x 3 passes; Winograd counted as the direct conv)")
EOF
