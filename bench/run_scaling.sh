#!/usr/bin/env bash
# Distributed throughput of dprune side by side with PyTorch DDP (gloo), interleaved
# round-robin, medians over rounds (NOTES.md, "Distributed performance (issue 3)").
#
#   bench/run_scaling.sh [--rounds N] [--models "resnet20 vgg16"] [--parts "shm ddp tcp"]
#                        [--quick] [--out DIR] [--first-round K]
#
# Parts (all by default):
#   shm  dprune 1x1, 1x2 (1 rank x 2 threads), 2x1 (2 ranks x 1 thread) with the default
#        gradient route (dist.allreduce = auto: the shared-memory window on one node), and
#        2x1 with dist.allreduce = mpi over Open MPI's shared-memory BTL (transport "vader")
#   ddp  bench/peer_ddp.py 1x1 and 2x1 (gloo over loopback TCP, the only CPU transport it has)
#   tcp  dprune vgg16 2x1 over Open MPI's TCP BTL (--mca btl tcp,self, dist.allreduce = mpi),
#        dist.overlap true/false,
#        each also with dist.watchdog_seconds = 0 (transport "tcp-wd0": a plain MPI_Wait instead
#        of the watchdog's MPI_Test loop, which naps 50 us between tests after the first 100 us)
#   allreduce  bench_allreduce, 2 ranks, shared memory and TCP (once, before the rounds)
#   r50  bench_train_step resnet50 batch 8, 1 thread (once): the per-core compute of the model
# Every run: the same global batch in every setting (resnet20 128, vgg16 64), a fixed number
# of steps (data.limit_train = batch x steps), a throughput window every LOG_EVERY steps;
# the first window is warm-up and dropped, the run's figure is the median of the rest.
# Within a round the runs go in a rotating order; the table gives medians over rounds.
# Environment: BUILD (default build-dist, must hold dprune), DATA (CIFAR-10 subset dir),
# STEPS (steps per run for every model; LOG_EVERY, default 2, steps per throughput window),
# PYTHON (default /usr/bin/python3, Debian's python3-torch), MCA_EXTRA (extra mpirun
# arguments for every dprune and bench_allreduce run, e.g. "--mca coll_libnbc_iallreduce_algorithm 2"),
# KEEP_CHECKPOINTS (set: keep each run's checkpoint; by default it is deleted once the run's
# metrics are read: 97 MB per vgg16 run, and a figure-of-record run makes ~70 of them).
# Speed probe: before a round and after each of its runs, a single-thread vgg16 step
# (bench_train_step vgg16 32, 1 thread, median of 4) runs on each core at once, pinned;
# probes.tsv gets both and their max. Slowdowns from outside this VM (the host's other guests)
# show there and nowhere else: no steal time, no busy cores, and they may hit one core and not
# the other. With PROBE_MAX (seconds, unset = no gate), a round first waits (probing every
# minute, up to PROBE_WAIT s, default 1800) for a probe at most PROBE_MAX, and a round with any
# probe above it does not count: rounds go on until ROUNDS rounds were clean or ROUNDS x
# PROBE_ATTEMPTS (default 3) were run. Every attempt stays in results.tsv under its own round
# number; scaling_table.py --max-probe PROBE_MAX keeps the clean ones. PROBE_BIN (default
# $BUILD/bench/bench_train_step) names the probe's program: keep one build's for every run
# whose probes are compared (a faster build reads lower, and PROBE_MAX is per program).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BUILD=${BUILD:-$root/build-dist}
MCA_EXTRA=${MCA_EXTRA:-}
DATA=${DATA:-$(cd "$root/../shared/data/cifar10-subset" 2>/dev/null && pwd || echo "")}
PYTHON=${PYTHON:-/usr/bin/python3}
first=1 rounds=5 models="resnet20 vgg16" parts="allreduce r50 shm ddp tcp" quick=0 out=""
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        --parts) parts=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        --first-round) first=$2; shift 2 ;;  # to add rounds to an existing --out
        *) echo "usage: $0 [--rounds N] [--models M] [--parts P] [--quick] [--out DIR] [--first-round K]" >&2; exit 2 ;;
    esac
done
[ -x "$BUILD/dprune" ] || { echo "no $BUILD/dprune: build it first (see NOTES.md)" >&2; exit 1; }
[ -f "$DATA/data_batch_1.bin" ] || { echo "no CIFAR-10 subset at '$DATA' (set DATA)" >&2; exit 1; }
out=${out:-$(mktemp -d /tmp/dprune-scaling.XXXXXX)}
mkdir -p "$out"
results=$out/results.tsv
[ -f "$results" ] || printf 'round\timpl\tmodel\tsetting\ttransport\toverlap\tips\tcomm_wait_ms\twindows\tothers_cores\n' >"$results"

# ---- machine etiquette: other developers share the 2 cores. Before every run wait (up to
# QUIET_WAIT seconds, default 300) until the others use less than QUIET_BUSY cores (default
# 0.15) over a second; every row records how many cores the others used during the run
# (busy time from /proc/stat minus this script's children), so noisy rows can be seen.
QUIET_WAIT=${QUIET_WAIT:-300}
QUIET_BUSY=${QUIET_BUSY:-0.15}
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }  # jiffies
# CPU seconds of this shell's finished children (`times` must run in this shell, not in $(...))
children_cpu() { awk 'NR==2{split($1,a,/[ms]/); split($2,b,/[ms]/); print (a[1]*60+a[2]+b[1]*60+b[2])}' "$1"; }
hz=$(getconf CLK_TCK)
quiet_gate() {
    local waited=0 b0 b1 busy
    while :; do
        b0=$(cpu_busy); sleep 1; b1=$(cpu_busy)
        busy=$(awk -v a="$b0" -v b="$b1" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz}')
        if awk -v x="$busy" -v t="$QUIET_BUSY" 'BEGIN{exit !(x < t)}'; then return 0; fi
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "   (machine not quiet after ${QUIET_WAIT}s: others use $busy cores; running anyway)" >&2
            return 0
        fi
        [ "$waited" = 0 ] && echo "   waiting for a quiet machine (others use $busy cores)" >&2
        sleep 4; waited=$((waited + 5))
    done
}
# measure CMD...: runs CMD, sets OTHERS (cores used by other processes meanwhile)
measure() {
    local b0 c0 t0 b1 c1 t1 st=0
    times >"$out/.times0"
    b0=$(cpu_busy) t0=$(date +%s.%N)
    "$@" || st=$?
    b1=$(cpu_busy) t1=$(date +%s.%N)
    times >"$out/.times1"
    c0=$(children_cpu "$out/.times0") c1=$(children_cpu "$out/.times1")
    OTHERS=$(awk -v b0="$b0" -v b1="$b1" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
        'BEGIN{o=((b1-b0)/hz-(c1-c0))/(t1-t0); if (o<0) o=0; printf "%.2f", o}')
    return $st
}

# probe ROUND WHEN: one speed probe on each core at once, appended to probes.tsv; sets PROBE
# (the slower core's seconds per step, NA if a probe failed)
probes=$out/probes.tsv
[ -f "$probes" ] || printf 'round\twhen\tstep_s\tcpu0_s\tcpu1_s\ttime\n' >"$probes"
probe_one() {  # probe_one CPU: seconds per step on that core
    OMP_NUM_THREADS=1 taskset -c "$1" "${PROBE_BIN:-$BUILD/bench/bench_train_step}" vgg16 32 1 1 4 2>/dev/null |
        sed -n 's/^RESULT.* median_s=\([0-9.]*\).*/\1/p'
}
probe() {
    local p0 p1
    probe_one 0 >"$out/.probe0" &
    p1=$(probe_one 1)
    wait $!
    p0=$(cat "$out/.probe0")
    PROBE=$(awk -v a="${p0:-NA}" -v b="${p1:-NA}" \
        'BEGIN{if (a == "NA" || b == "NA") print "NA"; else print (a > b ? a : b)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$PROBE" "${p0:-NA}" "${p1:-NA}" "$(date -Is)" >>"$probes"
}
probe_slow() {  # probe_slow: is the last probe above PROBE_MAX (or failed)?
    [ -n "${PROBE_MAX:-}" ] && awk -v p="$PROBE" -v m="$PROBE_MAX" 'BEGIN{exit !(p == "NA" || p > m)}'
}
# probe_gate ROUND: the probe before a round, waiting for PROBE_MAX when it is set
probe_gate() {
    local waited=0
    while :; do
        quiet_gate
        probe "$1" before
        probe_slow || return 0
        if [ "$waited" -ge "${PROBE_WAIT:-1800}" ]; then
            echo "   (probe still ${PROBE}s > PROBE_MAX ${PROBE_MAX}s after ${waited}s; running anyway)" >&2
            return 0
        fi
        echo "   probe ${PROBE}s > PROBE_MAX ${PROBE_MAX}s: the host is busy, waiting" >&2
        sleep 60; waited=$((waited + 60))
    done
}

batch_of() { case $1 in resnet20) echo 128 ;; vgg16) echo 64 ;; *) echo 64 ;; esac; }
steps_of() {
    if [ $quick = 1 ]; then echo 4; return; fi
    if [ -n "${STEPS:-}" ]; then echo "$STEPS"; return; fi
    case $1 in resnet20) echo 16 ;; vgg16) echo 10 ;; *) echo 10 ;; esac
}
LOG_EVERY=${LOG_EVERY:-2}
[ $quick = 1 ] && LOG_EVERY=1

# dprune MODEL RANKS THREADS TRANSPORT(shm|vader|tcp|tcp-wd0) OVERLAP(true|false) ROUND
dprune_run() {
    local model=$1 ranks=$2 threads=$3 transport=$4 overlap=$5 round=$6 wd="" route=mpi
    local batch steps tag dir cfg
    [ "$transport" = tcp-wd0 ] && wd="watchdog_seconds = 0;"
    [ "$transport" = shm ] && route=auto
    batch=$(batch_of "$model") steps=$(steps_of "$model")
    tag=dprune-$model-${ranks}x$threads-$transport-ov$overlap-r$round
    dir=$out/runs/$tag cfg=$out/cfg/$tag.cfg
    mkdir -p "$out/cfg"
    rm -rf "$dir"
    cat >"$cfg" <<EOF
# generated by bench/run_scaling.sh
run: { dir = "$dir"; seed = 42; threads = $threads; log_every = $LOG_EVERY; };
data: { dataset = "cifar10"; path = "$DATA"; limit_train = $((batch * steps)); limit_test = $batch;
        crop_pad = 4; flip = true; };
model: { arch = "$model"; };
train: { epochs = 1; batch = $batch; lr = 0.05; momentum = 0.9; weight_decay = 5e-4; };
dist: { allreduce = "$route"; overlap = $overlap; $wd };
EOF
    local mca=($MCA_EXTRA)
    case $transport in tcp*) mca+=(--mca btl tcp,self) ;; esac
    quiet_gate
    if ! OMP_NUM_THREADS=$threads measure "$root/launch/mpirun" "$ranks" "${mca[@]}" "$BUILD/dprune" \
        "$cfg" >"$out/cfg/$tag.log" 2>&1; then
        echo "FAILED: $tag (log $out/cfg/$tag.log)" >&2
        return 0
    fi
    "$PYTHON" - "$dir/metrics.jsonl" "$round" "$model" "${ranks}x$threads" "$transport" "$overlap" "$OTHERS" \
        >>"$results" <<'EOF'
import json, statistics, sys
path, rnd, model, setting, transport, overlap, others = sys.argv[1:8]
rows = [json.loads(l) for l in open(path)]
train = [r for r in rows if r.get("type") == "train"][1:]  # first window = warm-up
ips = statistics.median(r["images_per_s"] for r in train)
wait = statistics.median(r["comm_wait_ms"] for r in train)
print(f"{rnd}\tdprune\t{model}\t{setting}\t{transport}\t{overlap}\t{ips:.2f}\t{wait:.3f}\t{len(train)}\t{others}")
EOF
    # the run's checkpoint (97 MB for vgg16) is not part of the figure; kept, a few
    # rounds fill the disk
    [ -n "${KEEP_CHECKPOINTS:-}" ] || rm -f "$dir"/ckpt-*.dpck
    tail -n 1 "$results" >&2
}

# ddp MODEL WORLD ROUND
ddp_run() {
    local model=$1 world=$2 round=$3 batch steps line
    batch=$(batch_of "$model") steps=$(steps_of "$model")
    quiet_gate
    local log=$out/ddp-$model-$world-r$round.log
    if ! OMP_NUM_THREADS=1 measure "$PYTHON" "$here/peer_ddp.py" "$model" "$batch" "$world" 1 \
        "$steps" "$LOG_EVERY" >"$log" 2>&1 || ! line=$(grep '^RESULT' "$log"); then
        echo "FAILED: ddp $model $world (log $log)" >&2
        return 0
    fi
    local ips windows
    ips=$(sed -n 's/.* ips=\([0-9.]*\).*/\1/p' <<<"$line")
    windows=$(sed -n 's/.* windows=\([0-9]*\).*/\1/p' <<<"$line")
    printf '%s\tddp\t%s\t%sx1\ttcp-gloo\ttrue\t%s\tNA\t%s\t%s\n' "$round" "$model" "$world" "$ips" \
        "$windows" "$OTHERS" >>"$results"
    tail -n 1 "$results" >&2
}

# the list of runs of one round
jobs=()
for m in $models; do
    for p in $parts; do
        case $p in
            shm) jobs+=("dprune_run $m 1 1 shm true" "dprune_run $m 1 2 shm true"
                        "dprune_run $m 2 1 shm true" "dprune_run $m 2 1 vader true") ;;
            ddp) jobs+=("ddp_run $m 1" "ddp_run $m 2") ;;
            tcp) [ "$m" = vgg16 ] && jobs+=("dprune_run $m 2 1 tcp true" "dprune_run $m 2 1 tcp false"
                                            "dprune_run $m 2 1 tcp-wd0 true"
                                            "dprune_run $m 2 1 tcp-wd0 false") ;;
        esac
    done
done
{
    echo "# $(date -Is) $(uname -n) rounds=$rounds models='$models' parts='$parts' log_every=$LOG_EVERY"
    echo "# dprune $(git -C "$root" rev-parse --short=12 HEAD) dirty: $(git -C "$root" status --porcelain -- src include | wc -l) files under src/include"
    echo "# MCA_EXTRA='$MCA_EXTRA'"
    echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out/info.txt"
case " $parts " in *" allreduce "* | *" r50 "*) probe_gate setup ;; esac
for p in $parts; do
    case $p in
        allreduce)
            # the algorithm dprune asks libnbc for (src/dist/dist.c: Rabenseifner, 3) and, for the
            # record, libnbc's default choice for in-place buffers (binomial tree)
            for alg in 3 0; do
                sfx=$([ $alg = 3 ] && echo "" || echo "_libnbc_default")
                echo "== bench_allreduce shm, tcp (coll_libnbc_iallreduce_algorithm $alg)" >&2
                quiet_gate
                # shellcheck disable=SC2086
                "$root/launch/mpirun" 2 --mca coll_libnbc_iallreduce_algorithm $alg $MCA_EXTRA \
                    "$BUILD/bench/bench_allreduce" --label shm >"$out/allreduce_shm$sfx.txt"
                quiet_gate
                # shellcheck disable=SC2086
                "$root/launch/mpirun" 2 --mca coll_libnbc_iallreduce_algorithm $alg $MCA_EXTRA \
                    --mca btl tcp,self "$BUILD/bench/bench_allreduce" --label tcp \
                    >"$out/allreduce_tcp$sfx.txt"
                grep FIT "$out/allreduce_shm$sfx.txt" "$out/allreduce_tcp$sfx.txt" >&2
            done ;;
        r50)
            echo "== bench_train_step resnet50 8 1" >&2
            quiet_gate
            OMP_NUM_THREADS=1 "$BUILD/bench/bench_train_step" resnet50 8 1 1 3 | grep '^RESULT' \
                >"$out/resnet50.txt"
            cat "$out/resnet50.txt" >&2 ;;
    esac
done
n=${#jobs[@]}
clean=0 attempts=$rounds
[ -n "${PROBE_MAX:-}" ] && attempts=$((rounds * ${PROBE_ATTEMPTS:-3}))
for ((r = first; r < first + attempts && clean < rounds; r++)); do
    echo "== round $r (clean so far: $clean of $rounds; load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    probe_gate "$r"
    echo "   probe before: ${PROBE}s per step" >&2
    slow=0
    probe_slow && slow=1
    for ((k = 0; k < n; k++)); do
        j=${jobs[$(((k + r - 1) % n))]}
        $j "$r"
        probe "$r" "after $(cut -d' ' -f2- <<<"$j" | tr ' ' '-')"
        probe_slow && slow=1
        echo "   probe: ${PROBE}s per step" >&2
    done
    [ $slow = 0 ] && clean=$((clean + 1))
    [ $slow = 1 ] && echo "   round $r: a probe above PROBE_MAX, not counted" >&2
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/info.txt"

"$PYTHON" "$here/scaling_table.py" "$results" | tee "$out/table.md"
echo "results: $results" >&2
