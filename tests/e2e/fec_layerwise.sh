#!/usr/bin/env bash
# FEC layer by layer on 2 ranks (a 3-conv custom net, a Fashion-MNIST subset, FLOPs -50% by the
# ratio rule; the first conv is protected): one group is cut per round, last group first; the final widths are the one-shot
# plan's; without fine-tuning between groups the result is bitwise the one-shot model; a run
# stopped by SIGUSR1 inside the second group's fine-tuning resumes (the schedule travels in
# the checkpoint) to the bitwise result of the uninterrupted run; a wrong criterion or rounds
# is a config error.
source "$(dirname "$0")/lib/common.sh"

conf() { # $1 run dir, $2 extra prune settings
  cat <<CFG
run = { dir = "$1"; seed = 6; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 1024; limit_test = 300; drop_last = true; };
model = { arch = "custom"; layers = (
  { type = "conv"; out = 16; k = 3; pad = 1; }, { type = "bn"; }, { type = "relu"; },
  { type = "conv"; out = 32; k = 3; pad = 1; }, { type = "bn"; }, { type = "relu"; },
  { type = "maxpool"; k = 2; },
  { type = "conv"; out = 32; k = 3; pad = 1; }, { type = "bn"; }, { type = "relu"; },
  { type = "maxpool"; k = 2; }, { type = "flatten"; },
  { type = "linear"; out = 64; }, { type = "relu"; }, { type = "linear"; out = 10; } ); };
train = { epochs = 1; batch = 64; lr = 0.05; momentum = 0.9; };
dist = { sync_bn = true; };   # BN statistics identical on the ranks: a mid-epoch stop is exact
prune = { criterion = "fec"; budget = "flops"; target = 0.5; min_channels = 1; min_keep = 0.0;
          bn_recalib_batches = 4; $2 };
checkpoint = { every_epochs = 1; keep_last = 30; };
CFG
}
final_fp() { "$DPRUNE" inspect "$1/$(cat "$1/latest")" | grep fingerprint; }
widths() { awk '$1 ~ /^(conv|linear)[0-9]+$/ && NF == 7 {print $1, $3}' "$1" | tr '\n' ' '; }
# "G A B" of every group a plan file changes
cuts() { sed -n "s/^group \([0-9]*\) '[^']*': \([0-9]*\) -> \([0-9]*\) channels.*/\1 \2 \3/p" "$1" | awk '$2 != $3'; }

# one shot
conf "$TMP/a" "finetune_epochs = 0;" > "$TMP/a.cfg"
run_mpi 2 300 "$TMP/a.cfg"
cp "$TMP/out" "$TMP/a.out"
[ "$rc" -eq 0 ] && ok "one-shot run" || { bad "one-shot run exit $rc"; tail -20 "$TMP/out"; }
grep -q "budget: fec ratio rule, flops 0.5" "$TMP/a/plan-round1.txt" && ok "one shot: the ratio rule" \
  || bad "one shot: not the ratio rule: $(grep budget "$TMP/a/plan-round1.txt")"
want_widths=$(widths "$TMP/a.out")
ncut=$(cuts "$TMP/a/plan-round1.txt" | wc -l)
[ "$ncut" -ge 3 ] && ok "one shot cuts $ncut groups ($want_widths)" || bad "one shot cuts $ncut groups"

# layer by layer, fine-tuning between groups
conf "$TMP/c" "fec_layerwise = true; fec_layer_epochs = 1; finetune_epochs = 1;" > "$TMP/c.cfg"
run_mpi 2 300 "$TMP/c.cfg"
cp "$TMP/out" "$TMP/c.out"
[ "$rc" -eq 0 ] && ok "layer-by-layer run" || { bad "layer-by-layer run exit $rc"; tail -20 "$TMP/out"; }
prev=1000000 order_ok=1 rounds=0
for r in $(seq 1 "$ncut"); do
  f="$TMP/c/plan-round$r.txt"
  [ -s "$f" ] || { order_ok=0; echo "no $f"; break; }
  c=$(cuts "$f")
  [ "$(echo "$c" | grep -c .)" -eq 1 ] || { order_ok=0; echo "round $r cuts: $c"; }
  g=$(echo "$c" | awk '{print $1}' | head -1)
  [ -n "$g" ] && [ "$g" -lt "$prev" ] || order_ok=0
  prev=${g:-0}; rounds=$((rounds + 1))
done
[ ! -e "$TMP/c/plan-round$((ncut + 1)).txt" ] || order_ok=0
[ "$order_ok" -eq 1 ] && ok "$rounds rounds, one group each, last group first" || bad "rounds/order"
grep -q '"phase":"finetune1","epoch":1' "$TMP/c/metrics.jsonl" && grep -q "finetune$ncut epoch 1/1" "$TMP/c.out" \
  && ok "fine-tuning after every group" || bad "no fine-tuning between groups"
got_widths=$(widths "$TMP/c.out")
[ -n "$got_widths" ] && [ "$got_widths" = "$want_widths" ] && ok "final widths = one-shot widths ($got_widths)" \
  || bad "widths '$got_widths' vs one-shot '$want_widths'"
want_c=$(final_fp "$TMP/c")

# layer by layer without fine-tuning: bitwise the one-shot model
conf "$TMP/b" "fec_layerwise = true; fec_layer_epochs = 0; finetune_epochs = 0;" > "$TMP/b.cfg"
run_mpi 2 300 "$TMP/b.cfg"
[ "$rc" -eq 0 ] && [ "$(final_fp "$TMP/b")" = "$(final_fp "$TMP/a")" ] \
  && ok "no fine-tuning between groups: bitwise the one-shot model" \
  || { bad "layer by layer without fine-tuning differs from one shot (exit $rc)"; final_fp "$TMP/b"; final_fp "$TMP/a"; }

# SIGUSR1 inside the second group's fine-tuning, resume (the third cut then comes from the
# schedule in the checkpoint)
conf "$TMP/d" "fec_layerwise = true; fec_layer_epochs = 1; finetune_epochs = 1;" > "$TMP/d.cfg"
"$SRC/launch/mpirun" 2 "$DPRUNE" "$TMP/d.cfg" > "$TMP/d.out" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do [ -s "$TMP/d/plan-round2.txt" ] && break; sleep 0.05; done
kill -USR1 "$pid"
wait "$pid"; rc=$?
[ "$rc" -eq 0 ] && grep -q "stop signal: checkpointing" "$TMP/d.out" && ok "SIGUSR1 after the second cut: checkpoint, exit 0" \
  || { bad "SIGUSR1: exit $rc"; grep -E "stop signal|error" "$TMP/d.out"; }
run_mpi 2 300 --resume "$TMP/d.cfg"
grep -q "resume: .*finetune2" "$TMP/out" && grep -q "^prune round 3 (fec, fec layer by layer: group 3 of 3" "$TMP/out" \
  && ok "resumed inside finetune2, then the third cut from the checkpoint's schedule" \
  || { bad "resume did not continue finetune2 and cut the third group"; grep -E "^resume|^prune round" "$TMP/out"; }
[ "$rc" -eq 0 ] && [ "$(final_fp "$TMP/d")" = "$want_c" ] && ok "resume: bitwise the uninterrupted run" \
  || { bad "resume differs (exit $rc)"; final_fp "$TMP/d"; echo "want $want_c"; tail -5 "$TMP/out"; }

# config errors
conf "$TMP/e" "fec_layerwise = true; criterion = \"l1\";" | sed 's/criterion = "fec"; //' > "$TMP/e.cfg"
run_mpi 1 60 "$TMP/e.cfg"
expect_error "fec_layerwise with l1" "fec_layerwise.*needs criterion"
conf "$TMP/e" "fec_layerwise = true; rounds = 2;" > "$TMP/e.cfg"
run_mpi 1 60 "$TMP/e.cfg"
expect_error "fec_layerwise with rounds = 2" "rounds.*leave rounds"
finish
