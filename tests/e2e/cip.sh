#!/usr/bin/env bash
# CIP end to end on 2 ranks (fmnist_cnn at width 0.5, a Fashion-MNIST subset, uniform ratio 0.5,
# 3 steps over 6 epochs): the soft steps happen after epochs 2 and 4 of the schedule with
# floor(p_t C) channels per group (metrics, and the zero filters in the checkpoints of those
# epochs), step 3 cuts the final plan after epoch 6, and the pruned model has the plan's
# parameter count; ranks stay bitwise identical throughout (dist.check_every = 1). A SIGUSR1
# inside the schedule checkpoints with the CIP state and the resumed run ends bitwise equal to
# the uninterrupted one. `dprune plan` previews the final plan.
source "$(dirname "$0")/lib/common.sh"

conf() { # $1 run dir
  cat <<CFG
run = { dir = "$1"; seed = 4; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 2048; limit_test = 500; drop_last = true; };
model = { arch = "fmnist_cnn"; width = 0.5; };
train = { epochs = 1; batch = 64; lr = 0.05; momentum = 0.9; nesterov = true;
          weight_decay = 5e-4; };
dist = { check_every = 1; sync_bn = true; };
prune = { criterion = "cip"; ratio = 0.5; protect_first = false; min_channels = 1;
          min_keep = 0.0; cip_steps = 3; cip_epochs = 6; finetune_epochs = 1;
          calib_images = 256; };
checkpoint = { every_epochs = 1; keep_last = 20; };
CFG
}
final_fp() { "$DPRUNE" inspect "$1/$(cat "$1/latest")" | grep fingerprint; }
# zero_rows CKPT: how many filters of conv1, conv2 and fc1 are all zero in a checkpoint
zero_rows() {
  rm -rf "$TMP/dump"
  "$DPRUNE" dump "$1" "$TMP/dump" > /dev/null 2>&1 || { echo "dump failed"; return; }
  python3 - "$TMP/dump" <<'PY'
import struct, sys
out = []
for name, rows in (("conv1.weight", 16), ("conv2.weight", 32), ("fc1.weight", 64)):
    data = open(f"{sys.argv[1]}/{name}.f32", "rb").read()
    n = len(data) // 4 // rows
    vals = struct.unpack(f"<{len(data) // 4}f", data)
    out.append(sum(all(v == 0 for v in vals[r * n:(r + 1) * n]) for r in range(rows)))
print(" ".join(map(str, out)))
PY
}

conf "$TMP/a" > "$TMP/a.cfg"
run_mpi 2 300 "$TMP/a.cfg"
cp "$TMP/out" "$TMP/a.out"
[ "$rc" -eq 0 ] && ok "CIP run" || { bad "CIP run exit $rc"; tail -20 "$TMP/out"; }

# the schedule: p_t = 0.5 (1 - (1 - t/3)^3) of 16, 32, 64 channels after epochs 2, 4, 6
steps=$(grep '"type":"cip_step"' "$TMP/a/metrics.jsonl" \
  | sed -n 's/.*"step":\([0-9]*\),"steps":3,"epoch":\([0-9]*\),.*"cut":\([a-z]*\),.*"zeroed_per_group":\[\([0-9,]*\)\].*/\1@\2:\3:\4/p' | tr '\n' ' ')
want="1@2:false:5,11,22 2@4:false:7,15,30 3@6:true:8,16,32 "
[ "$steps" = "$want" ] && ok "steps at the scheduled epochs with the scheduled counts: $steps" \
  || bad "steps '$steps', want '$want'"
# the checkpoints (train: 32 steps per epoch; cip1 epoch e ends at global step 32 (e + 1))
z1=$(zero_rows "$TMP/a/ckpt-000064.dpck"); z2=$(zero_rows "$TMP/a/ckpt-000096.dpck")
[ "$z1" = "0 0 0" ] && [ "$z2" = "5 11 22" ] \
  && ok "zero filters: none after epoch 1, '$z2' after step 1 (epoch 2)" \
  || bad "zero filters after epochs 1 and 2: '$z1', '$z2'"
z3=$(zero_rows "$TMP/a/ckpt-000128.dpck"); z4=$(zero_rows "$TMP/a/ckpt-000160.dpck")
awk -v z="$z4" 'BEGIN { split(z, a, " "); exit !(a[1] >= 7 && a[2] >= 15 && a[3] >= 30) }' \
  && ok "zero filters after step 2 (epoch 4): '$z4' (after epoch 3: '$z3')" \
  || bad "zero filters after step 2: '$z4'"
"$DPRUNE" inspect "$TMP/a/ckpt-000096.dpck" | grep -q "CIP state:" \
  && ! "$DPRUNE" inspect "$TMP/a/$(cat "$TMP/a/latest")" | grep -q "CIP state:" \
  && ok "the CIP state is in the schedule's checkpoints only" || bad "CIP state sections"

# step 3 is the cut: the pruned model has the plan's size
plan="$TMP/a/plan-round1.txt"
predicted=$(sed -n 's/^params: [0-9]* -> \([0-9]*\).*/\1/p' "$plan")
got=$(awk '$1 == "pruned" {print $2}' "$TMP/a.out")
[ -n "$got" ] && [ "$got" = "$predicted" ] && ok "pruned model has the planned $got params" \
  || bad "pruned params '$got' vs plan '$predicted'"
grep -qE '^conv1 +16 +8 ' "$TMP/a.out" && grep -qE '^conv2 +32 +16 ' "$TMP/a.out" \
  && grep -qE '^fc1 +64 +32 ' "$TMP/a.out" && ok "widths 16->8, 32->16, 64->32" \
  || { bad "widths"; grep -A6 "ch.before" "$TMP/a.out"; }
want_fp=$(final_fp "$TMP/a")

# SIGUSR1 inside the schedule (after step 1): checkpoint with the CIP state, exit 0, resume
conf "$TMP/b" > "$TMP/b.cfg"
stop_mpi_when "$TMP/b.out" "$TMP/b.cfg" 1200 0.05 grep -qs '"type":"cip_step"' "$TMP/b/metrics.jsonl"
if [ "$rc" -eq 0 ] && grep -q "stop signal: checkpointing at cip1" "$TMP/b.out"; then
  ok "SIGUSR1 inside the schedule: checkpoint and exit 0"
else
  bad "SIGUSR1 inside the schedule: exit $rc"; grep -E "stop signal|error" "$TMP/b.out"
fi
"$DPRUNE" inspect "$TMP/b/$(cat "$TMP/b/latest")" | grep -q "CIP state:" \
  && ok "the checkpoint holds the CIP state" || bad "no CIP section in the checkpoint"
run_mpi 2 300 --resume "$TMP/b.cfg"
[ "$rc" -eq 0 ] && grep -q "resumed inside the schedule after step 1 of 3" "$TMP/out" \
  && [ "$(final_fp "$TMP/b")" = "$want_fp" ] && ok "resume inside the schedule: bitwise identical" \
  || { bad "resume inside the schedule differs (exit $rc)"; final_fp "$TMP/b"; echo "want $want_fp"; tail -5 "$TMP/out"; }

# dry run: the final plan without training
run_mpi 1 120 plan "$TMP/a.cfg"
[ "$rc" -eq 0 ] && grep -q "nothing was cut" "$TMP/out" && grep -q "FLOPs 1117056 -> 307648" "$TMP/out" \
  && ok "dprune plan previews the final plan" || { bad "dprune plan for cip: exit $rc"; tail -5 "$TMP/out"; }
finish
