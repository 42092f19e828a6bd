#!/usr/bin/env bash
# A/B of two dprune builds on the scaling figures of issue 3: in every round, each build runs
# vgg16 (or MODEL) 1x1 and 2x1 at the same global batch, in a rotating order; the table gives,
# per build, the medians over rounds of 1x1, 2x1 and the efficiency 2x1 / (2 x 1x1), and the
# paired per-round ratios new / base.
#
#   bench/ab_scaling.sh BASE_BUILD NEW_BUILD [rounds (6)] [out dir]
#
# Environment: MODEL (vgg16), BATCH (64), STEPS (30), LOG_EVERY (5), DATA (the CIFAR-10 subset),
# KEEP_CHECKPOINTS (set: keep each run's checkpoint; by default it is deleted once read).
# A run's figure is the median of its throughput windows after the first (warm-up), as in
# run_scaling.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ $# -ge 2 ] || { echo "usage: $0 BASE_BUILD NEW_BUILD [rounds] [out]" >&2; exit 2; }
base=$1 new=$2 rounds=${3:-6} out=${4:-$(mktemp -d /tmp/dprune-ab.XXXXXX)}
MODEL=${MODEL:-vgg16} BATCH=${BATCH:-64} STEPS=${STEPS:-30} LOG_EVERY=${LOG_EVERY:-5}
DATA=${DATA:-$(cd "$root/../shared/data/cifar10-subset" && pwd)}
for b in "$base" "$new"; do [ -x "$b/dprune" ] || { echo "no $b/dprune" >&2; exit 1; }; done
mkdir -p "$out"
results=$out/ab.tsv
[ -f "$results" ] || printf 'round\tbuild\tsetting\tips\n' >"$results"

# run BUILD_LABEL BUILD_DIR RANKS ROUND
run() {
    local label=$1 build=$2 ranks=$3 round=$4 dir cfg
    dir=$out/runs/$label-${ranks}x1-r$round cfg=$out/$label-${ranks}x1-r$round.cfg
    rm -rf "$dir"
    cat >"$cfg" <<EOF
run: { dir = "$dir"; seed = 42; threads = 1; log_every = $LOG_EVERY; };
data: { dataset = "cifar10"; path = "$DATA"; limit_train = $((BATCH * STEPS)); limit_test = $BATCH;
        crop_pad = 4; flip = true; };
model: { arch = "$MODEL"; };
train: { epochs = 1; batch = $BATCH; lr = 0.05; momentum = 0.9; weight_decay = 5e-4; };
EOF
    OMP_NUM_THREADS=1 "$root/launch/mpirun" "$ranks" "$build/dprune" "$cfg" >"$cfg.log" 2>&1 ||
        { echo "FAILED: $cfg (log $cfg.log)" >&2; return 0; }
    python3 - "$dir/metrics.jsonl" "$round" "$label" "${ranks}x1" >>"$results" <<'EOF'
import json, statistics, sys
path, rnd, label, setting = sys.argv[1:5]
rows = [json.loads(l) for l in open(path)]
train = [r for r in rows if r.get("type") == "train"][1:]
print(f"{rnd}\t{label}\t{setting}\t{statistics.median(r['images_per_s'] for r in train):.2f}")
EOF
    # the run's checkpoint (97 MB for vgg16) is not part of the figure; kept, a few
    # rounds fill the disk
    [ -n "${KEEP_CHECKPOINTS:-}" ] || rm -f "$dir"/ckpt-*.dpck
    tail -n 1 "$results" >&2
}

jobs=("run base $base 1" "run base $base 2" "run new $new 1" "run new $new 2")
for ((r = 1; r <= rounds; r++)); do
    for ((j = 0; j < ${#jobs[@]}; j++)); do
        ${jobs[$(((j + r) % ${#jobs[@]}))]} "$r"
    done
done
python3 - "$results" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
ips = {(r["round"], r["build"], r["setting"]): float(r["ips"]) for r in rows}
rounds = sorted({r["round"] for r in rows}, key=int)
def eff(rd, b):
    return ips[(rd, b, "2x1")] / (2 * ips[(rd, b, "1x1")])
ok = [rd for rd in rounds if all((rd, b, s) in ips for b in ("base", "new") for s in ("1x1", "2x1"))]
med = lambda xs: statistics.median(xs) if xs else float("nan")
rng = lambda xs: f"[{min(xs):.3f}-{max(xs):.3f}]" if xs else ""
print(f"{len(ok)} complete rounds")
for b in ("base", "new"):
    e = [eff(rd, b) for rd in ok]
    print(f"{b:5s} 1x1 {med([ips[(rd, b, '1x1')] for rd in ok]):7.2f}  2x1 "
          f"{med([ips[(rd, b, '2x1')] for rd in ok]):7.2f}  efficiency {med(e):.3f} {rng(e)}")
for s in ("1x1", "2x1"):
    q = [ips[(rd, "new", s)] / ips[(rd, "base", s)] for rd in ok]
    print(f"new / base {s}: {med(q):.3f} {rng(q)}")
print("per round efficiency base/new: " + ", ".join(f"{eff(rd, 'base'):.3f}/{eff(rd, 'new'):.3f}" for rd in ok))
EOF
