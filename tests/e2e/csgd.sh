#!/usr/bin/env bash
# C-SGD end to end on 2 ranks (fmnist_cnn, a Fashion-MNIST subset): the phase start predicts the
# epoch at which the deviation falls below the threshold and the phase ends there; the merge
# changes the logits by less than 1e-4 and the accuracy not at all; the pruned model has the
# plan's size; ranks stay bitwise identical (dist.check_every = 1). A run stopped by SIGUSR1
# inside the C-SGD phase, and one killed with SIGKILL after a checkpoint of the phase, resume
# to the bitwise result of the uninterrupted run. `dprune plan` previews the merge.
source "$(dirname "$0")/lib/common.sh"

conf() { # $1 run dir
  cat <<CFG
run = { dir = "$1"; seed = 4; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 3072; limit_test = 500; drop_last = true; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 2; batch = 64; lr = 0.05; momentum = 0.9; nesterov = true;
          weight_decay = 5e-4; };
dist = { check_every = 1; sync_bn = true; };
prune = { criterion = "csgd"; ratio = 0.5; protect_first = false; min_channels = 1;
          min_keep = 0.0; finetune_epochs = 1; };
csgd = { centripetal = 0.05; vector_ratio = 1.0; lr = 0.05; epochs = 6; threshold = 1e-9; };
checkpoint = { every_epochs = 1; keep_last = 3; };
CFG
}
final_fp() { "$DPRUNE" inspect "$1/$(cat "$1/latest")" | grep fingerprint; }

conf "$TMP/a" > "$TMP/a.cfg"
run_mpi 2 300 "$TMP/a.cfg"
cp "$TMP/out" "$TMP/a.out"
[ "$rc" -eq 0 ] && ok "C-SGD run" || { bad "C-SGD run exit $rc"; tail -20 "$TMP/out"; }
predicted=$(sed -n 's/.*predicted below the threshold .* at the end of epoch \([0-9]*\) of.*/\1/p' "$TMP/a.out")
ended=$(sed -n 's/^csgd1 ends at epoch \([0-9]*\) of [0-9]*: the members are identical.*/\1/p' "$TMP/a.out")
[ -n "$predicted" ] && [ "$predicted" = "$ended" ] && ok "phase ended at the predicted epoch $ended" \
  || bad "predicted epoch '$predicted', ended at '$ended'"
change=$(sed -n 's/.*"logits_change":\([^,]*\),.*/\1/p' "$TMP/a/metrics.jsonl")
awk -v c="$change" 'BEGIN { exit !(c != "" && c >= 0 && c < 1e-4) }' \
  && ok "merge moved the logits by $change (< 1e-4)" || bad "merge moved the logits by '$change'"
before=$(sed -n 's/^eval  before-merge epoch 1  test: top1 \([0-9.]*\)%.*/\1/p' "$TMP/a.out")
after=$(sed -n 's/^eval  after-surgery epoch 1  test: top1 \([0-9.]*\)%.*/\1/p' "$TMP/a.out")
[ -n "$before" ] && [ "$before" = "$after" ] && ok "test accuracy unchanged by the merge ($before%)" \
  || bad "accuracy before merge '$before', after '$after'"
grep -q '"type":"csgd","phase":"csgd1","epoch":0' "$TMP/a/metrics.jsonl" && ok "deviation logged as a metric" \
  || bad "no csgd deviation records in metrics.jsonl"
grep -q "params -" "$TMP/a.out" && grep -q "conv2 *64 *32" "$TMP/a.out" && ok "conv2 merged 64 -> 32" \
  || { bad "summary does not show conv2 64 -> 32"; grep -A6 "ch.before" "$TMP/a.out"; }
want=$(final_fp "$TMP/a")

# SIGUSR1 inside the C-SGD phase: checkpoint with the clusters, exit 0, resume
conf "$TMP/b" > "$TMP/b.cfg"
stop_mpi_when "$TMP/b.out" "$TMP/b.cfg" 600 0.05 grep -qs '"type":"csgd"' "$TMP/b/metrics.jsonl"
if [ "$rc" -eq 0 ] && grep -q "stop signal: checkpointing at csgd1" "$TMP/b.out"; then
  ok "SIGUSR1 inside C-SGD: checkpoint and exit 0"
else
  bad "SIGUSR1 inside C-SGD: exit $rc"; grep -E "stop signal|error" "$TMP/b.out"
fi
"$DPRUNE" inspect "$TMP/b/$(cat "$TMP/b/latest")" | grep -q "C-SGD state:" && ok "the checkpoint holds the C-SGD clusters" \
  || bad "no C-SGD section in the checkpoint"
run_mpi 2 300 --resume "$TMP/b.cfg"
[ "$rc" -eq 0 ] && grep -q "resumed inside the phase" "$TMP/out" && [ "$(final_fp "$TMP/b")" = "$want" ] \
  && ok "resume inside C-SGD: bitwise identical" \
  || { bad "resume inside C-SGD differs (exit $rc)"; final_fp "$TMP/b"; echo "want $want"; tail -5 "$TMP/out"; }

# SIGKILL after the C-SGD phase's first checkpoint, resume
conf "$TMP/c" > "$TMP/c.cfg"
"$SRC/launch/mpirun" 2 "$DPRUNE" "$TMP/c.cfg" > "$TMP/c.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q '"type":"csgd","phase":"csgd1","epoch":1' "$TMP/c/metrics.jsonl" 2>/dev/null && break; sleep 0.05; done
sleep 0.3
pkill -KILL -f "dprune $TMP/c.cfg"; wait "$pid"
run_mpi 2 300 --resume "$TMP/c.cfg"
[ "$rc" -eq 0 ] && [ "$(final_fp "$TMP/c")" = "$want" ] && ok "SIGKILL in C-SGD + resume: bitwise identical" \
  || { bad "SIGKILL in C-SGD + resume differs (exit $rc)"; tail -5 "$TMP/out"; }

# schedules: two rounds toward the target (64 -> 48 -> 32), and train wider then squeeze to
# the width-1 model (model.width = 1.5: conv2 96 -> 64)
small() { # $1 run dir, $2 a further sed expression
  conf "$1" | sed -e 's/limit_train = 3072/limit_train = 1024/' -e 's/epochs = 2;/epochs = 1;/' \
    -e 's/epochs = 6; threshold = 1e-9;/epochs = 1; threshold = 0;/' -e 's/finetune_epochs = 1;/finetune_epochs = 0;/' \
    -e 's/check_every = 1;/check_every = 0;/' -e 's/every_epochs = 1;/every_epochs = 0;/' -e "$2"
}
small "$TMP/r" 's/finetune_epochs = 0;/finetune_epochs = 0; rounds = 2;/' > "$TMP/r.cfg"
run_mpi 2 300 "$TMP/r.cfg"
[ "$rc" -eq 0 ] && grep -q "'conv2': 64 -> 48 channels" "$TMP/r/plan-round1.txt" && grep -q "'conv2': 48 -> 32 channels" "$TMP/r/plan-round2.txt" \
  && ok "two C-SGD rounds: conv2 64 -> 48 -> 32" \
  || { bad "two rounds (exit $rc)"; head -3 "$TMP/r/plan-round1.txt" "$TMP/r/plan-round2.txt"; tail -5 "$TMP/out"; }
small "$TMP/w" 's/arch = "fmnist_cnn";/arch = "fmnist_cnn"; width = 1.5;/; s/^csgd = {/csgd = { target = "base_width";/' > "$TMP/w.cfg"
run_mpi 2 300 "$TMP/w.cfg"
[ "$rc" -eq 0 ] && grep -q "'conv2': 96 -> 64 channels" "$TMP/w/plan-round1.txt" && grep -q "'fc1': 192 -> 128 channels" "$TMP/w/plan-round1.txt" \
  && ok "train wider (x1.5), squeeze to width 1: conv2 96 -> 64, fc1 192 -> 128" \
  || { bad "base_width squeeze (exit $rc)"; grep -- "->" "$TMP/w/plan-round1.txt" | head; tail -5 "$TMP/out"; }

# dry run: the merge plan without training
run_mpi 1 120 plan "$TMP/a.cfg"
[ "$rc" -eq 0 ] && grep -q "FLOPs 4241152 -> 1117056" "$TMP/out" && ok "dprune plan previews the merge" \
  || { bad "dprune plan for csgd: exit $rc"; tail -5 "$TMP/out"; }
finish
