#!/usr/bin/env bash
# Latency tables and the latency budget through the program (no timing assertions):
# `dprune profile` writes a table and a per-layer summary (also on 2 ranks, where rank 0
# measures); `dprune plan` with budget "latency" reports the estimated latency before/after;
# a whole run prunes with it; a bad, foreign or missing table, or none configured, stops the
# run before training with one error naming the file and what is wrong.
source "$(dirname "$0")/lib/common.sh"

cfg() { # cfg NAME ARCH PRUNE-SETTINGS
cat > "$TMP/$1.cfg" <<CFG
run = { dir = "$TMP/run-$1"; seed = 3; log_every = 0; threads = 1; };
data = { dataset = "fashion-mnist"; limit_train = 256; limit_test = 128; };
model = { arch = "$2"; };
train = { epochs = 1; batch = 32; lr = 0.05; };
prune = { criterion = "l1"; finetune_epochs = 0; bn_recalib_batches = 2; $3 };
CFG
}
profile() { # profile ARGS... (one process; output in $TMP/out)
  rc=0
  timeout 120 "$DPRUNE" profile "$@" >"$TMP/out" 2>&1 || rc=$?
}

# ---- dprune profile: the table (default run.dir/latency.txt) and the summary
cfg lat fmnist_cnn 'budget = "latency"; target = 0.4; round_to = 4; latency_table = "run-lat/latency.txt";'
profile "$TMP/lat.cfg" --batch 8 --grid 2 --reps 1
table="$TMP/run-lat/latency.txt"
if [ "$rc" -eq 0 ] && [ -s "$table" ]; then ok "profile wrote $table"; else bad "profile exit $rc"; tail "$TMP/out"; fi
head -3 "$table" | grep -q '^dprune-latency-table 1$' && grep -q '^model fmnist_cnn$' "$table" \
  && grep -q '^batch 8$' "$table" && grep -q '^threads 1$' "$table" && grep -q '^times infer train$' "$table" \
  && ok "table header: model, batch, threads, training times" || bad "table header"
grep -q '^machine ' "$table" && grep -q '^blas_core ' "$table" && ok "table names machine and OpenBLAS core" \
  || bad "machine/core missing"
grep -qE '^conv2 +32x14x14 -> 64x14x14 k3/1' "$TMP/out" && grep -qE '^total ' "$TMP/out" \
  && grep -q 'share' "$TMP/out" && ok "per-layer summary printed" || { bad "summary"; cat "$TMP/out"; }

# explicit OUT, inference only, 2 ranks: rank 0 measures and says so
rc=0
timeout 120 "$SRC/launch/mpirun" 2 "$DPRUNE" profile "$TMP/lat.cfg" "$TMP/infer.txt" --batch 4 --grid 1 --reps 1 \
  --infer-only >"$TMP/out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] && grep -q 'rank 0 measures alone' "$TMP/out" && grep -q '^times infer$' "$TMP/infer.txt" \
  && ok "profile on 2 ranks, inference only" || { bad "2-rank profile exit $rc"; tail "$TMP/out"; }
profile "$TMP/lat.cfg" --grid 0
[ "$rc" -eq 2 ] && grep -q 'usage: dprune profile' "$TMP/out" && ok "bad profile option: usage" \
  || bad "bad option exit $rc"

# ---- dprune plan: the estimated latency before/after and the reduction reached
rc=0
OMP_NUM_THREADS=1 "$DPRUNE" plan "$TMP/lat.cfg" >"$TMP/out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] && grep -q '^budget: latency 0.4' "$TMP/out" && grep -q 'estimated inference latency' "$TMP/out"; then
  ok "plan: $(grep 'achieved' "$TMP/out"); $(grep -o 'estimated inference latency [0-9.]* -> [0-9.]* ms' "$TMP/out")"
else
  bad "plan exit $rc"; tail "$TMP/out"
fi
# The reduction reachable depends on the measured table (a tiny model at batch 4 under load has
# large fixed costs), so only its consistency is checked here; the planner's accuracy on a
# target is tested with synthetic tables in tests/prune/test_latency_budget.c.
achieved=$(sed -n 's/^target reduction: .*achieved: \([0-9.]*\)$/\1/p' "$TMP/out")
read -r before after < <(grep -o 'estimated inference latency [0-9.]* -> [0-9.]* ms' "$TMP/out" | awk '{print $4, $6}')
awk -v a="$achieved" -v b="$before" -v f="$after" 'BEGIN { exit !(a > 0 && b > 0 && (1 - f / b - a) ^ 2 < 1e-4) }' \
  && ok "achieved $achieved = 1 - $after / $before" || bad "achieved '$achieved' vs latency '$before' -> '$after'"

# ---- a whole run prunes with the latency budget (2 ranks)
run_mpi 2 300 "$TMP/lat.cfg"
[ "$rc" -eq 0 ] && grep -q '^budget: latency' "$TMP/run-lat/plan-round1.txt" \
  && ok "run with a latency budget" || { bad "latency run exit $rc"; tail -20 "$TMP/out"; }

# ---- bad tables: one clear error naming the file, before any training
expect_early() { # NAME PATTERN: failed with PATTERN, and no epoch was trained
  expect_error "$1" "$2"
  if grep -q '"type":"train"' "$TMP/run-bad/metrics.jsonl" 2>/dev/null; then bad "$1: trained first"; fi
}
bad_run() { # bad_run NAME PATTERN PRUNE-SETTINGS
  rm -rf "$TMP/run-bad"
  cat > "$TMP/bad.cfg" <<CFG
run = { dir = "$TMP/run-bad"; log_every = 0; threads = 1; };
data = { dataset = "fashion-mnist"; limit_train = 256; limit_test = 128; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 1; batch = 32; };
prune = { criterion = "l1"; budget = "latency"; finetune_epochs = 0; $3 };
CFG
  run_mpi 2 60 "$TMP/bad.cfg"
  expect_early "$1" "$2"
}
printf 'hello\n' > "$TMP/garbage.txt"
bad_run "garbage table" "garbage.txt.*not a dprune latency table" "latency_table = \"$TMP/garbage.txt\";"
bad_run "missing table" "nothere.txt" "latency_table = \"$TMP/nothere.txt\";"
bad_run "no table configured" "prune.latency_table.*dprune profile" ""
sed 's/^entry conv2 conv$/entry convX conv/' "$table" > "$TMP/renamed.txt"
bad_run "table lacking a layer" "renamed.txt has no entry for layer 'conv2'" "latency_table = \"$TMP/renamed.txt\";"
sed 's/^infer 32: \([0-9.e-]*\) /infer 32: \1 x /' "$table" > "$TMP/damaged.txt"
bad_run "damaged row" "damaged.txt line [0-9]+" "latency_table = \"$TMP/damaged.txt\";"
bad_run "training target, inference table" "infer.txt holds inference times only" \
  "latency_table = \"$TMP/infer.txt\"; latency_of = \"train\";"
cfg other lenet5 ''
profile "$TMP/other.cfg" "$TMP/lenet.txt" --batch 4 --grid 1 --reps 1 --infer-only
bad_run "another model's table" "lenet.txt was measured on model 'lenet5'" "latency_table = \"$TMP/lenet.txt\";"
finish
