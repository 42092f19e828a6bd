#!/usr/bin/env bash
# Failures on one rank end the whole job quickly with one clear message and a non-zero exit:
# a corrupt JPEG met by one rank mid-epoch, a NaN loss, a stalled rank (watchdog), replicas
# that diverge (dist.check_every), a shared-memory gradient route asked for where it cannot work.
source "$(dirname "$0")/lib/common.sh"
shared=${DPRUNE_SHARED_DIR:-$SRC/../shared}

# a tiny ImageFolder with one garbage JPEG, met during the first epoch
for c in n01440764 n02102040; do
  mkdir -p "$TMP/if/train/$c" "$TMP/if/val/$c"
  ls "$shared/data/imagefolder-sample/train/$c" | head -6 | while read -r f; do
    cp "$shared/data/imagefolder-sample/train/$c/$f" "$TMP/if/train/$c/"; done
  ls "$shared/data/imagefolder-sample/val/$c" | head -2 | while read -r f; do
    cp "$shared/data/imagefolder-sample/val/$c/$f" "$TMP/if/val/$c/"; done
done
head -c 3000 /dev/urandom > "$TMP/if/train/n02102040/zz_corrupt.JPEG"
cat > "$TMP/jpeg.cfg" <<CFG
run = { dir = "$TMP/run1"; log_every = 0; };
data = { dataset = "imagefolder"; path = "$TMP/if"; image_size = 32; resize = 36; };
model = { arch = "resnet20"; };
train = { epochs = 1; batch = 4; };
CFG
start=$(date +%s)
run_mpi 2 120 "$TMP/jpeg.cfg"
expect_error "corrupt JPEG on one rank" "zz_corrupt.JPEG"
[ $(( $(date +%s) - start )) -lt 60 ] && ok "corrupt JPEG ended the job within 60 s" || bad "too slow"

base="run = { dir = \"$TMP/run2\"; log_every = 0; };
data = { dataset = \"fashion-mnist\"; limit_train = 512; limit_test = 64; };
model = { arch = \"fmnist_cnn\"; };
train = { epochs = 1; batch = 64; };"

printf '%s\ndist = { debug_nan_step = 2; };\n' "$base" > "$TMP/nan.cfg"
run_mpi 2 120 "$TMP/nan.cfg"
expect_error "NaN loss" "loss became nan"
[ "$(grep -c 'dprune: error' "$TMP/out")" -eq 1 ] && ok "NaN reported once" || bad "NaN reported $(grep -c 'dprune: error' "$TMP/out") times"

printf '%s\ndist = { watchdog_seconds = 3; debug_stall_rank = 1; debug_stall_step = 2; debug_stall_seconds = 60; };\n' "$base" > "$TMP/stall.cfg"
start=$(date +%s)
run_mpi 2 120 "$TMP/stall.cfg"
took=$(( $(date +%s) - start ))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "ranks that have not arrived: 1" "$TMP/out" && [ "$took" -lt 40 ]; then
  ok "watchdog named the stalled rank 1 after ${took}s"
else
  bad "watchdog: exit $rc after ${took}s"; tail -15 "$TMP/out"
fi

# replicas can diverge only on the MPI route: on the shared-memory route the ranks compute
# with one copy of the parameters, and the perturbation aid is refused there
printf '%s\ndist = { allreduce = "mpi"; check_every = 1; debug_perturb_rank = 1; debug_perturb_step = 3; };\n' "$base" > "$TMP/diverge.cfg"
run_mpi 2 120 "$TMP/diverge.cfg"
expect_error "diverged replicas detected" "ranks hold different values of"
printf '%s\ndist = { allreduce = "shm"; debug_perturb_rank = 1; };\n' "$base" > "$TMP/perturb_shm.cfg"
run_mpi 2 120 "$TMP/perturb_shm.cfg"
expect_error "perturbation refused with shared parameters" 'debug_perturb_rank needs dist.allreduce = "mpi"'
# no room for the shared-memory window: dist.allreduce = "shm" is refused on every rank with
# the reason; "auto" says why it falls back to MPI and trains
printf '%s\ndist = { allreduce = "shm"; };\n' "$base" > "$TMP/shm.cfg"
export OMPI_MCA_osc_sm_backing_directory=/nonexistent-dprune-dir
run_mpi 2 120 "$TMP/shm.cfg"
expect_error "shm route without room" 'dist.allreduce = "shm" cannot be used: /nonexistent-dprune-dir has 0 MB free'
printf '%s\n' "$base" > "$TMP/auto.cfg"
run_mpi 2 120 "$TMP/auto.cfg"
if [ "$rc" -eq 0 ] && grep -q "note: gradients summed with MPI: /nonexistent-dprune-dir" "$TMP/out" &&
   grep -q "gradient sum: MPI buckets" "$TMP/out"; then
  ok "auto route fell back to MPI and said why"
else
  bad "auto route without room: exit $rc"; tail -15 "$TMP/out"
fi
unset OMPI_MCA_osc_sm_backing_directory
run_mpi 2 120 "$TMP/auto.cfg"
grep -q "gradient sum: shared memory" "$TMP/out" && [ "$rc" -eq 0 ] &&
  ok "auto route uses the shared-memory window on one node" || bad "auto route: exit $rc"
finish
