#!/usr/bin/env bash
# The whole pipeline on a small Fashion-MNIST run (2 ranks): train, calibrate, plan, surgery,
# BN re-estimation, fine-tune, summary. The pruned model's parameter count is the one the
# plan predicted from the analytic counts; `dprune plan` prints the same plan without cutting.
source "$(dirname "$0")/lib/common.sh"

for crit in corr l1 hrank; do
cat > "$TMP/$crit.cfg" <<CFG
run = { dir = "$TMP/run-$crit"; seed = 5; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 1024; limit_test = 500; val_split = 0.1; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 1; batch = 64; lr = 0.05; };
prune = { criterion = "$crit"; budget = "ratios"; ratios = [0.8, 0.8, 0.0];
          protect_first = false; finetune_epochs = 1; calib_images = 128; };
CFG
run_mpi 2 300 "$TMP/$crit.cfg"
if [ "$rc" -ne 0 ]; then bad "$crit pipeline exit $rc"; tail -20 "$TMP/out"; continue; fi
plan="$TMP/run-$crit/plan-round1.txt"
[ -s "$plan" ] && ok "$crit: plan written" || bad "$crit: no plan file"
predicted=$(sed -n 's/^params: [0-9]* -> \([0-9]*\).*/\1/p' "$plan")
got=$(awk '$1 == "pruned" {print $2}' "$TMP/out")
[ -n "$got" ] && [ "$got" = "$predicted" ] && ok "$crit: pruned model has the planned $got params" \
  || bad "$crit: pruned params '$got' vs plan '$predicted'"
# 80% of 32 and 64 channels removed: 7 and 13 kept (floors 4 / 10%)
grep -qE '^conv1 +32 +7 ' "$TMP/out" && grep -qE '^conv2 +64 +13 ' "$TMP/out" \
  && ok "$crit: conv widths 32->7, 64->13" || bad "$crit: widths"
grep -q '"type":"prune_summary"' "$TMP/run-$crit/metrics.jsonl" && ok "$crit: summary in metrics" \
  || bad "$crit: no prune_summary metric"
done

OMP_NUM_THREADS=1 "$DPRUNE" plan "$TMP/corr.cfg" > "$TMP/plan.out" 2>&1 && grep -q "nothing was cut" "$TMP/plan.out" \
  && ok "dprune plan dry run" || { bad "dprune plan"; tail "$TMP/plan.out"; }
# corr's pair rule reaches the criterion: the weaker-member rule keeps other conv2 channels
sed 's/calib_images = 128;/calib_images = 128; corr_remove = "weaker";/' "$TMP/corr.cfg" > "$TMP/weaker.cfg"
OMP_NUM_THREADS=1 "$DPRUNE" plan "$TMP/weaker.cfg" > "$TMP/plan-weaker.out" 2>&1
keep_of() { grep -A2 "'conv2'" "$1" | sed -n 's/^ *keep: //p'; }
k1=$(keep_of "$TMP/plan.out"); k2=$(keep_of "$TMP/plan-weaker.out")
[ "$(echo $k1 | wc -w)" = 13 ] && [ "$(echo $k2 | wc -w)" = 13 ] && [ "$k1" != "$k2" ] \
  && ok "corr_remove = weaker: 13 conv2 channels kept, not the same as the METHODS rule's" \
  || bad "corr_remove: keep lists '$k1' / '$k2'"
# export (BN folded, fp32 and fp16) of the pruned model evaluates like the checkpoint
ck="$TMP/run-corr/$(cat "$TMP/run-corr/latest")"
if "$DPRUNE" export "$ck" "$TMP/exp.dpck" > "$TMP/exp.out" 2>&1 && "$DPRUNE" export "$ck" "$TMP/exp16.dpck" --fp16 >> "$TMP/exp.out" 2>&1; then
  a=$(OMP_NUM_THREADS=1 "$DPRUNE" eval "$ck" 2>/dev/null | sed -n 's/.*top1 \([0-9.]*\)%.*/\1/p')
  b=$(OMP_NUM_THREADS=1 "$DPRUNE" eval "$TMP/exp.dpck" 2>/dev/null | sed -n 's/.*top1 \([0-9.]*\)%.*/\1/p')
  c=$(OMP_NUM_THREADS=1 "$DPRUNE" eval "$TMP/exp16.dpck" 2>/dev/null | sed -n 's/.*top1 \([0-9.]*\)%.*/\1/p')
  awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { exit !(a != "" && b == a && (c - a < 1 && a - c < 1)) }' \
    && ok "export: top1 $a (checkpoint) = $b (BN folded), $c (fp16)" || bad "export: top1 $a vs $b vs $c"
  s32=$(stat -c %s "$TMP/exp.dpck"); s16=$(stat -c %s "$TMP/exp16.dpck")
  [ $((s16 * 10)) -lt $((s32 * 6)) ] && ok "fp16 export $s16 bytes vs fp32 $s32" || bad "fp16 export not smaller: $s16 vs $s32"
else
  bad "export failed"; cat "$TMP/exp.out"
fi
finish
