#!/usr/bin/env bash
# Comparison harness: trains one baseline from CONF (prune disabled), then prunes that same
# checkpoint with every criterion in CRITERIA, each with SEEDS seeds (run.seed varies the
# fine-tune order and the random criterion), and prints mean and standard deviation of test
# accuracy right after surgery (BN re-estimated) and after fine-tuning, params, FLOPs and the
# measured inference speed. Every criterion gets the same budget: the same prune settings and
# the same fine-tune epochs after the common checkpoint (csgd spends them in its C-SGD phase,
# with no fine-tuning after the exact merge; its "after surgery" is after that phase).
#
#   bench/compare_criteria.sh CONF "corr l1 random" 3 [RANKS]
#   bench/compare_criteria.sh CONF "corr:corr_fold=false corr corr:corr_compensate=true" 3
# The prune section of CONF (budget, ratios, finetune_epochs, ...) is used as is; only
# criterion and seed change, and a variant CRIT:KEY=VALUE[:KEY=VALUE...] also sets those prune
# settings (it is reported under its full name). Results: bench/out/compare-<name>/results.tsv
# and a table.
set -euo pipefail
conf=$(readlink -f "$1"); criteria=$2; seeds=${3:-3}; ranks=${4:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DPRUNE_BIN:-$here/build/dprune}
name=$(basename "$conf" .cfg)
out=$here/bench/out/compare-$name
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# 1. the common baseline checkpoint (prune off)
if [ ! -s "$out/baseline/latest" ]; then
  python3 - "$conf" "$out/baseline.cfg" "$out/baseline" none 0 <<'PY'
import re, sys
src, dst, rundir, crit, seed = sys.argv[1:]
t = open(src).read()
t = re.sub(r'dir\s*=\s*"[^"]*"', f'dir = "{rundir}"', t, count=1)
t = re.sub(r'criterion\s*=\s*"[^"]*"', f'criterion = "{crit}"', t, count=1)
if seed != "0": t = re.sub(r'seed\s*=\s*\d+', f'seed = {seed}', t, count=1)
t = t.replace('path = "../', 'path = "' + __import__("os").path.dirname(src) + '/../')
open(dst, "w").write(t)
PY
  "$here/launch/mpirun" "$ranks" "$bin" "$out/baseline.cfg" > "$out/baseline.log" 2>&1
fi
ckpt="$out/baseline/$(cat "$out/baseline/latest")"
echo "baseline checkpoint: $ckpt"

# 2. every criterion x seed from that checkpoint
printf 'criterion\tseed\tafter_surgery\tfinal\tparams\tflops\tinfer_img_s\n' > "$out/results.tsv"
for variant in $criteria; do
  crit=${variant%%:*}
  for s in $(seq 1 "$seeds"); do
    dir="$out/$variant-s$s"
    if [ -s "$dir/metrics.jsonl" ] && grep -q '"type":"prune_summary"' "$dir/metrics.jsonl"; then
      echo "$variant seed $s: done before (delete $dir to redo it)"
    else
    rm -rf "$dir"
    python3 - "$conf" "$out/$variant-s$s.cfg" "$dir" "$variant" "$s" <<'PY'
import re, sys, os
src, dst, rundir, variant, seed = sys.argv[1:]
crit, *sets = variant.split(":")
t = open(src).read()
extra = ""
for kv in sets:  # a prune setting the config has already is replaced, a new one added
    key, val = kv.split("=", 1)
    if not re.fullmatch(r'true|false|[-+0-9.eE]+|".*"|\[.*\]', val):
        val = f'"{val}"'  # a bare word is a string setting
    pat = rf'(?m)^(\s*){key}\s*=\s*[^;]*;'
    if re.search(pat, t):
        t = re.sub(pat, lambda m: f'{m.group(1)}{key} = {val};', t, count=1)
    else:
        extra += f" {key} = {val};"
t = re.sub(r'dir\s*=\s*"[^"]*"', f'dir = "{rundir}"', t, count=1)
t = re.sub(r'criterion\s*=\s*"[^"]*";?', f'criterion = "{crit}";{extra}', t, count=1)
t = re.sub(r'seed\s*=\s*\d+', f'seed = {seed}', t, count=1)
t = t.replace('path = "../', 'path = "' + os.path.dirname(src) + '/../')
t = re.sub(r'(?m)^checkpoint\s*[:=]\s*\{[^}]*\}\s*;?', '', t)  # replaced below: resume from the baseline
if crit == "csgd":  # C-SGD spends the fine-tune budget in its own phase, then merges
    m = re.search(r'finetune_epochs\s*=\s*(\d+)', t)
    n = m.group(1) if m else "2"
    t = re.sub(r'finetune_epochs\s*=\s*\d+', 'finetune_epochs = 0', t, count=1)
    if re.search(r'csgd\s*:\s*{', t):
        t = re.sub(r'(csgd\s*:\s*{[^}]*?)epochs\s*=\s*\d+', lambda k: k.group(1) + f'epochs = {n}', t, count=1)
    else:
        t += f'\ncsgd: {{ epochs = {n}; }};\n'
open(dst, "w").write(t)
PY
    printf '\ncheckpoint: { resume = "%s"; every_epochs = 0; };\n' "$ckpt" >> "$out/$variant-s$s.cfg"
    "$here/launch/mpirun" "$ranks" "$bin" "$out/$variant-s$s.cfg" > "$dir.log" 2>&1 || { echo "$variant seed $s failed: $dir.log"; continue; }
    fi
    python3 - "$dir/metrics.jsonl" "$variant" "$s" >> "$out/results.tsv" <<'PY'
import json, sys
path, crit, seed = sys.argv[1:]
after = None; summ = None
for line in open(path):
    r = json.loads(line)
    if r.get("type") == "eval" and r.get("phase") == "after-surgery" and r.get("split") == "test": after = r["top1"]
    if r.get("type") == "prune_summary": summ = r
print(f'{crit}\t{seed}\t{after:.4f}\t{summ["top1_after"]:.4f}\t{summ["params_after"]}\t{summ["flops_after"]}\t{summ["infer_img_s_after"]:.0f}')
PY
  done
done

# 3. the table
python3 - "$out/results.tsv" "$out/baseline.log" <<'PY'
import sys, statistics as st, re
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
base = None
for l in open(sys.argv[2]):
    m = re.match(r"eval\s+train epoch \d+\s+test: top1 ([\d.]+)%", l)
    if m: base = float(m.group(1))
print(f"baseline test top1: {base}%")
print(f"{'criterion':<34} {'n':>2} {'after surgery %':>18} {'after fine-tune %':>20} {'kept of base':>13} {'params':>9} {'FLOPs':>11} {'infer img/s':>12}")
by = {}
for r in rows: by.setdefault(r[0], []).append(r)
for c, rs in by.items():
    a = [100*float(r[2]) for r in rs]; f = [100*float(r[3]) for r in rs]
    sd = lambda v: st.stdev(v) if len(v) > 1 else 0.0
    kept = f"{st.mean(f)/base:.4f}" if base else "-"
    print(f"{c:<34} {len(rs):>2} {st.mean(a):>10.2f} ± {sd(a):<5.2f} {st.mean(f):>12.2f} ± {sd(f):<5.2f} {kept:>13} {rs[0][4]:>9} {rs[0][5]:>11} {st.mean(float(r[6]) for r in rs):>12.0f}")
# "beats random": mean above random's by more than twice the standard error of the difference
if "random" in by and len(by["random"]) > 1:
    def col(rs, i): return [100*float(r[i]) for r in rs]
    print(f"\nagainst random: difference of means (2 x its standard error); beats = difference > 2 SE")
    print(f"{'criterion':<34} {'after surgery':>24} {'after fine-tune':>24}")
    for c, rs in by.items():
        if c == "random" or len(rs) < 2: continue
        cells = []
        for i in (2, 3):
            x, y = col(rs, i), col(by["random"], i)
            d = st.mean(x) - st.mean(y)
            se = (st.variance(x)/len(x) + st.variance(y)/len(y)) ** 0.5
            cells.append(f"{d:+6.2f} ({2*se:4.2f}) {'beats' if d > 2*se else '-':>5}")
        print(f"{c:<34} {cells[0]:>24} {cells[1]:>24}")
PY
