#!/usr/bin/env bash
# The PCC + CI pipeline (METHODS.md section 4) on a small Fashion-MNIST run (2 ranks): pre-train
# with CE + PCC (train.pcc_lambda), score with ci, choose widths by the cumulative-CI threshold
# bisected to a FLOPs target, fine-tune with CE only. Checks that the term runs on the maps of
# the prunable groups and is logged during training only, that the plan meets the FLOPs target
# and that the pruned model has the planned parameter count.
source "$(dirname "$0")/lib/common.sh"

cat > "$TMP/pcc.cfg" <<CFG
run = { dir = "$TMP/run"; seed = 5; log_every = 4; };
data = { dataset = "fashion-mnist"; limit_train = 1024; limit_test = 500; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 1; batch = 64; lr = 0.05; pcc_lambda = 1.0; };
prune = { criterion = "ci"; budget = "flops"; target = 0.5; protect_first = false;
          finetune_epochs = 1; calib_images = 128; };
CFG
run_mpi 2 120 "$TMP/pcc.cfg"
if [ "$rc" -ne 0 ]; then bad "pipeline exit $rc"; tail -20 "$TMP/out"; finish; exit; fi
ok "PCC + CI pipeline ran"

# conv1 and conv2 carry the term; fc1's map has one pixel and is left out
grep -q "train: PCC term, lambda 1, on 2 post-ReLU maps" "$TMP/out" && ok "term on 2 maps" \
  || bad "no announcement of the term on 2 maps"
grep -qE '^train epoch 1/1  step 16/16  loss [0-9.]+  pcc [0-9.]+' "$TMP/out" \
  && ok "pcc in the progress line" || bad "no pcc in the progress line"
grep -qE '^finetune1 .* pcc ' "$TMP/out" && bad "pcc printed while fine-tuning" \
  || ok "fine-tuning without the term"

python3 - "$TMP/run/metrics.jsonl" <<'PY' && ok "pcc in train metrics only, in [0, 1], term = -pcc" || bad "pcc metrics"
import json, sys
train = ft = epoch = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") not in ("train", "epoch"): continue
    if r["phase"] == "train":
        assert 0 <= r["pcc"] <= 1 and abs(r["pcc_term"] + r["pcc"]) < 1e-6, r
        train += r["type"] == "train"; epoch += r["type"] == "epoch"
    else:
        assert "pcc" not in r, r
        ft += 1
assert train == 4 and epoch == 1 and ft > 0, (train, epoch, ft)
PY

# widths by the CI threshold bisected to the FLOPs target
grep -qE "prune round 1 \(ci, flops tau 0\.[0-9]+\)" "$TMP/out" && ok "ci threshold bisected (flops tau)" \
  || bad "no 'ci, flops tau' plan"
cut=$(sed -n 's/.*FLOPs -\([0-9.]*\)%.*/\1/p' "$TMP/out")
awk -v c="$cut" 'BEGIN { exit !(c != "" && c > 45 && c < 55) }' && ok "FLOPs -$cut% (target 50%)" \
  || bad "FLOPs cut '$cut'% far from the 50% target"
plan="$TMP/run/plan-round1.txt"
predicted=$(sed -n 's/^params: [0-9]* -> \([0-9]*\).*/\1/p' "$plan")
got=$(awk '$1 == "pruned" {print $2}' "$TMP/out")
[ -n "$got" ] && [ "$got" = "$predicted" ] && ok "pruned model has the planned $got params" \
  || bad "pruned params '$got' vs plan '$predicted'"
finish
