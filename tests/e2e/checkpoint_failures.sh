#!/usr/bin/env bash
# Damaged and unwritable checkpoints through the program: a bit flip or a truncation gives one
# clear error and a non-zero exit (inspect, eval); --resume skips a damaged newest checkpoint
# with a warning naming it and continues from the previous good one; a write that fails
# (ulimit -f) is reported by the run, which goes on, and the previous checkpoint stays loadable.
source "$(dirname "$0")/lib/common.sh"

cat > "$TMP/a.cfg" <<CFG
run = { dir = "$TMP/a"; seed = 4; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 1024; limit_test = 200; };
model = { arch = "fmnist_cnn"; width = 0.5; };
train = { epochs = 3; batch = 64; };
checkpoint = { every_epochs = 1; keep_last = 3; };
CFG
run_mpi 2 300 "$TMP/a.cfg"
[ "$rc" -eq 0 ] && ok "run with 3 checkpoints" || { bad "run exit $rc"; tail "$TMP/out"; }
newest="$TMP/a/$(cat "$TMP/a/latest")"
files=$(ls "$TMP"/a/ckpt-*.dpck | sort)

# a single bit flip in the middle, and a truncation: clear errors, non-zero exits
cp "$newest" "$TMP/flip.dpck"
size=$(stat -c %s "$TMP/flip.dpck")
printf '\x55' | dd of="$TMP/flip.dpck" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
head -c $((size / 3)) "$newest" > "$TMP/trunc.dpck"
for f in flip trunc; do
  if "$DPRUNE" inspect "$TMP/$f.dpck" > "$TMP/i.out" 2>&1; then bad "inspect $f: exit 0"
  elif grep -q "dprune: error:.*$f.dpck" "$TMP/i.out"; then ok "inspect $f: $(grep -m1 'dprune: error' "$TMP/i.out" | cut -c1-110)"
  else bad "inspect $f: no clear message"; tail -3 "$TMP/i.out"; fi
  if OMP_NUM_THREADS=1 "$DPRUNE" eval "$TMP/$f.dpck" > "$TMP/e.out" 2>&1; then bad "eval $f: exit 0"
  else ok "eval $f: non-zero exit"; fi
done

# --resume: the damaged newest is skipped with a warning, the previous good one is used
cp "$TMP/flip.dpck" "$newest"
sed -i 's/epochs = 3/epochs = 4/' "$TMP/a.cfg"
run_mpi 2 300 --resume "$TMP/a.cfg"
if [ "$rc" -eq 0 ] && grep -q "skipping.*$(basename "$newest")" "$TMP/out" && grep -q "resume: .*ckpt-" "$TMP/out"; then
  ok "resume skipped the damaged $(basename "$newest") and continued"
else bad "resume over a damaged checkpoint: exit $rc"; tail "$TMP/out"; fi

# a write that fails: ulimit -f below a checkpoint's size; the run says so and goes on
good="$TMP/a/$(cat "$TMP/a/latest")"
sed -i 's/epochs = 4/epochs = 5/' "$TMP/a.cfg"
# (the limit is set inside the rank only: mpirun's own session files are larger)
rc=0; timeout 300 "$SRC/launch/mpirun" 1 bash -c "ulimit -f 200; exec '$DPRUNE' --resume '$TMP/a.cfg'" > "$TMP/out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] && grep -qi "warning:.*not saved.*File too large" "$TMP/out" && "$DPRUNE" inspect "$good" > /dev/null 2>&1; then
  ok "failed write reported, run finished, previous checkpoint loadable"
else bad "failed write: exit $rc"; tail "$TMP/out"; fi
finish
