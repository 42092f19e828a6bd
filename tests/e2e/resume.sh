#!/usr/bin/env bash
# Crash-safe resume on 2 ranks: a run stopped by SIGUSR1 (through mpirun) and runs killed with
# SIGKILL at seeded random moments (during steps, checkpoint writes, calibration or surgery)
# are resumed with --resume until they finish; their final model, BN buffers and momentum are
# bitwise those of an uninterrupted run. Metrics lines are not duplicated.
# Replay a failure with DPRUNE_KILL_SEED=<printed seed>.
source "$(dirname "$0")/lib/common.sh"
seed=${DPRUNE_KILL_SEED:-$RANDOM}
echo "kill seed: $seed (replay with DPRUNE_KILL_SEED=$seed)"
RANDOM=$seed

conf() { # $1 run dir
  cat <<CFG
run = { dir = "$1"; seed = 9; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 3072; limit_test = 300; crop_pad = 1; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 3; batch = 64; lr = 0.05; };
prune = { criterion = "corr"; budget = "ratios"; ratios = [0.5, 0.5, 0.0];
          protect_first = false; finetune_epochs = 2; calib_images = 128; };
checkpoint = { every_epochs = 1; keep_last = 2; };
CFG
}
final_fp() { "$DPRUNE" inspect "$1/$(cat "$1/latest")" | grep fingerprint; }

conf "$TMP/a" > "$TMP/a.cfg"
t0=$(date +%s%N)
run_mpi 2 300 "$TMP/a.cfg"
span_ms=$(( ($(date +%s%N) - t0) / 1000000 ))   # kills land inside a run of this length
[ "$rc" -eq 0 ] && ok "uninterrupted run" || { bad "uninterrupted run exit $rc"; tail "$TMP/out"; }
want=$(final_fp "$TMP/a")
steps_a=$(grep -c '"type":"epoch"' "$TMP/a/metrics.jsonl")

# SIGUSR1 through mpirun in the middle of training: checkpoint, exit 0, resume
conf "$TMP/b" > "$TMP/b.cfg"
stop_mpi_when "$TMP/b.out" "$TMP/b.cfg" 300 0.1 test -f "$TMP/b/latest"
if [ "$rc" -eq 0 ] && grep -q "stop signal: checkpointing" "$TMP/b.out"; then ok "SIGUSR1: checkpoint and exit 0"; else bad "SIGUSR1: exit $rc"; tail "$TMP/b.out"; fi
run_mpi 2 300 --resume "$TMP/b.cfg"
[ "$rc" -eq 0 ] && [ "$(final_fp "$TMP/b")" = "$want" ] && ok "SIGUSR1 + resume: bitwise identical" \
  || { bad "SIGUSR1 + resume differs (exit $rc)"; final_fp "$TMP/b"; echo "want $want"; tail "$TMP/out"; }

# SIGKILL at random moments, resume until done. The run's length was measured once; under a
# load that falls away (other tests finishing) a later run can be faster, so if no kill lands
# the whole sequence starts again from scratch with kills twice as early.
conf "$TMP/c" > "$TMP/c.cfg"
for round in 1 2 3 4; do
rm -rf "$TMP/c"
kills=0
for attempt in 1 2 3 4 5 6 7 8; do
  # within the first 70% of a run: a resumed attempt may run faster than the measured one
  delay_ms=$(( span_ms / 10 + (RANDOM * 32768 + RANDOM) % (span_ms * 6 / 10 + 1) ))
  "$SRC/launch/mpirun" 2 "$DPRUNE" --resume "$TMP/c.cfg" > "$TMP/c.out" 2>&1 &
  pid=$!
  ( sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"; pkill -KILL -f "dprune --resume $TMP/c.cfg" ) &
  killer=$!
  wait "$pid"; rc=$?
  kill "$killer" 2>/dev/null; wait "$killer" 2>/dev/null
  # a rank spawned while pkill scanned would write beside the next attempt: none may remain
  while pgrep -f "dprune --resume $TMP/c.cfg" > /dev/null; do
    pkill -KILL -f "dprune --resume $TMP/c.cfg"; sleep 0.1
  done
  if [ "$rc" -eq 0 ] && grep -q "prune_summary" "$TMP/c/metrics.jsonl" 2>/dev/null; then break; fi
  kills=$((kills + 1))
done
[ "$kills" -ge 1 ] && break
echo "no kill landed in a run of ${span_ms} ms: again with kills twice as early"
span_ms=$((span_ms / 2))
done
run_mpi 2 300 --resume "$TMP/c.cfg"   # finishes (or finds the run complete)
got=$(final_fp "$TMP/c")
[ "$kills" -ge 1 ] && ok "killed $kills times (run of ${span_ms} ms)" || bad "no kill landed inside the run"
[ "$got" = "$want" ] && ok "SIGKILL x$kills + resume: bitwise identical" \
  || { bad "SIGKILL x$kills + resume differs"; echo "got $got"; echo "want $want"; tail -5 "$TMP/out"; }
# every epoch line once, as in the uninterrupted run
steps_c=$(grep -c '"type":"epoch"' "$TMP/c/metrics.jsonl")
[ "$steps_c" = "$steps_a" ] && ok "metrics not duplicated ($steps_c epoch lines)" || bad "metrics: $steps_c epoch lines vs $steps_a"
# a checkpoint from 2 ranks resumed on 1 rank: works (same global batch), and says that
# bitwise identity no longer holds
mkdir -p "$TMP/d" && cp "$TMP/a/$(cat "$TMP/a/latest")" "$TMP/d/" && cat "$TMP/a/latest" > "$TMP/d/latest"
conf "$TMP/d" > "$TMP/d.cfg"
sed -i 's/finetune_epochs = 2/finetune_epochs = 3/' "$TMP/d.cfg"   # one more epoch to run
run_mpi 1 300 --resume "$TMP/d.cfg"
[ "$rc" -eq 0 ] && grep -q "saved on 2 ranks, now 1" "$TMP/out" && grep -q "finetune1 epoch 3/3" "$TMP/out" \
  && ok "2-rank checkpoint resumed on 1 rank, with the note" || { bad "rank-count change: exit $rc"; tail "$TMP/out"; }
finish
