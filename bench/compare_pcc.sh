#!/usr/bin/env bash
# PCC + CI against CE + CI (METHODS.md section 4): the same config run twice per seed, once as
# written (train.pcc_lambda != 0: pre-training with CE + PCC) and once with pcc_lambda = 0 (the
# CE-only control), each a whole run: pre-train, CI scores, widths by the cumulative-CI
# threshold bisected to the FLOPs target of the config, fine-tune with CE only. Both variants
# of a seed start from the same initial weights and see the same data order. Prints, per
# variant, mean and standard deviation over seeds of the test top-1 after pre-training, right
# after surgery (BN re-estimated) and after fine-tuning, the last pre-training epoch's mean pcc,
# params and FLOPs after pruning; then the per-seed paired difference pcc - ce.
#
#   bench/compare_pcc.sh [-e EPOCHS] [-f FT_EPOCHS] [-l LIMIT_TRAIN] CONF [SEEDS=3] [RANKS=2]
#
# -e, -f, -l override train.epochs, prune.finetune_epochs and data.limit_train (a quick smoke
# run: -e 1 -f 1 -l 512). Results: bench/out/compare-pcc-<name>/results.tsv and a table; a
# variant/seed whose metrics are complete is not run again (delete its directory to redo it).
set -euo pipefail
epochs="" ft="" limit=""
while getopts "e:f:l:" o; do
  case $o in
  e) epochs=$OPTARG ;;
  f) ft=$OPTARG ;;
  l) limit=$OPTARG ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
conf=$(readlink -f "${1:?usage: $0 [-e EPOCHS] [-f FT_EPOCHS] [-l LIMIT] CONF [SEEDS] [RANKS]}")
seeds=${2:-3}; ranks=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DPRUNE_BIN:-$here/build/dprune}
name=$(basename "$conf" .cfg)
out=$here/bench/out/compare-pcc-$name
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
lambda=$(sed -n 's/^[^#]*pcc_lambda\s*=\s*\([-0-9.eE+]*\).*/\1/p' "$conf" | head -1)
if [ -z "$lambda" ] || awk -v l="$lambda" 'BEGIN { exit !(l == 0) }'; then
  echo "$conf: set train.pcc_lambda (non-zero) for the PCC variant" >&2; exit 2
fi

# CONF -> one variant's config: run dir, seed, pcc_lambda and the overrides; relative data
# paths made absolute (the generated file lives elsewhere)
make_cfg() { # dst rundir seed lambda
  python3 - "$conf" "$@" "$epochs" "$ft" "$limit" <<'PY'
import os, re, sys
src, dst, rundir, seed, lam, epochs, ft, limit = sys.argv[1:]
t = open(src).read()
def sub(key, value):  # the first `key = ...` outside a comment
    global t
    t, n = re.subn(rf'(?m)^([^#\n]*?)\b{key}\s*=\s*("[^"]*"|[-0-9.eE+]+)', rf'\g<1>{key} = {value}', t, count=1)
    if n == 0: sys.exit(f"{src}: no setting {key}")
sub("dir", f'"{rundir}"')
sub("seed", seed)
sub("pcc_lambda", lam)
if epochs: sub("epochs", epochs)  # train's: the first, and warmup_epochs is another word
if ft: sub("finetune_epochs", ft)
if limit: t = re.sub(r'(?m)^(data\s*[:=]\s*\{)', rf'\g<1>\n  limit_train = {limit};', t, count=1)
t = t.replace('path = "../', 'path = "' + os.path.dirname(src) + '/../')
open(dst, "w").write(t)
PY
}

complete() { [ -s "$1/metrics.jsonl" ] && grep -q '"type":"prune_summary"' "$1/metrics.jsonl"; }

# seeds outer, variants inner: both variants of a seed run close together in time
for s in $(seq 1 "$seeds"); do
  for v in ce pcc; do
    dir="$out/$v-s$s"
    complete "$dir" && { echo "$v seed $s: done before"; continue; }
    rm -rf "$dir"
    make_cfg "$out/$v-s$s.cfg" "$dir" "$s" "$([ $v = pcc ] && echo "$lambda" || echo 0)"
    echo "$v seed $s: running ($dir.log)"
    "$here/launch/mpirun" "$ranks" "$bin" "$out/$v-s$s.cfg" > "$dir.log" 2>&1 \
      || { echo "$v seed $s failed: $dir.log"; continue; }
  done
done

# the table
python3 - "$out" "$seeds" "$lambda" <<'PY'
import json, os, statistics as st, sys
out, seeds, lam = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
with open(os.path.join(out, "results.tsv"), "w") as tsv:
    tsv.write("variant\tseed\tpretrain\tafter_surgery\tfinal\tpcc_last_epoch\tparams\tflops\n")
    for s in range(1, seeds + 1):
        for v in ("ce", "pcc"):
            path = os.path.join(out, f"{v}-s{s}", "metrics.jsonl")
            if not os.path.exists(path): continue
            after = summ = pcc = None
            for line in open(path):
                r = json.loads(line)
                if r.get("type") == "eval" and r.get("phase") == "after-surgery" and r.get("split") == "test": after = r["top1"]
                if r.get("type") == "epoch" and r.get("phase") == "train": pcc = r.get("pcc")
                if r.get("type") == "prune_summary": summ = r
            if summ is None or after is None: continue
            row = (summ["top1_before"], after, summ["top1_after"], pcc, summ["params_after"], summ["flops_after"])
            rows.setdefault(v, {})[s] = row
            tsv.write(f"{v}\t{s}\t" + "\t".join("" if x is None else str(x) for x in row) + "\n")
sd = lambda x: st.stdev(x) if len(x) > 1 else 0.0
fmt = lambda x: f"{100 * st.mean(x):6.2f} ± {100 * sd(x):4.2f}" if x else "-"
print(f"CE + CI (pcc_lambda 0) vs PCC + CI (pcc_lambda {lam}); test top-1 %, mean ± sd over seeds")
print(f"{'variant':<8} {'n':>2} {'pre-trained':>15} {'after surgery':>15} {'fine-tuned':>15} {'mean pcc':>9} {'params':>10} {'FLOPs':>12}")
for v in ("ce", "pcc"):
    rs = list(rows.get(v, {}).values())
    if not rs: continue
    p = [r[3] for r in rs if r[3] is not None]
    print(f"{v:<8} {len(rs):>2} {fmt([r[0] for r in rs]):>15} {fmt([r[1] for r in rs]):>15} {fmt([r[2] for r in rs]):>15} "
          f"{(f'{st.mean(p):.4f}' if p else '-'):>9} {st.mean(r[4] for r in rs):>10.0f} {st.mean(r[5] for r in rs):>12.0f}")
both = [s for s in rows.get("ce", {}) if s in rows.get("pcc", {})]
if both:
    d = lambda k: [rows["pcc"][s][k] - rows["ce"][s][k] for s in both]
    print(f"paired pcc - ce over {len(both)} seeds (points): pre-trained {fmt(d(0))}, after surgery {fmt(d(1))}, fine-tuned {fmt(d(2))}")
PY
