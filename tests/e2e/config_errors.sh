#!/usr/bin/env bash
# A bad config or data path gets one clear message naming the file and setting, and a
# non-zero exit on every rank (2 ranks), never a hang or a crash.
source "$(dirname "$0")/lib/common.sh"

base='run = { dir = "RUN"; log_every = 0; };
data = { dataset = "fashion-mnist"; limit_train = 256; limit_test = 64; };
model = { arch = "fmnist_cnn"; };
train = { epochs = 1; batch = 64; };'
cfg() { printf '%s\n%s\n' "${base//RUN/$TMP/run}" "$1" > "$TMP/$2"; }

cfg 'train = { lr = 0.1; };' dup.cfg
run_mpi 2 60 "$TMP/dup.cfg"; expect_error "duplicate section" "dup.cfg:[0-9]+"

printf '%s\n' "${base//RUN/$TMP/run}" | sed 's/epochs = 1/epochz = 1/' > "$TMP/typo.cfg"
run_mpi 2 60 "$TMP/typo.cfg"; expect_error "misspelt key" "typo.cfg:4.*epochz.*did you mean"

printf '%s\n' "${base//RUN/$TMP/run}" | sed 's/batch = 64/batch = -3/' > "$TMP/range.cfg"
run_mpi 2 60 "$TMP/range.cfg"; expect_error "out of range" "range.cfg:4.*train.batch"

printf '%s\n' "${base//RUN/$TMP/run}" | sed 's/fashion-mnist"; /cifar10"; path = "nowhere"; /' > "$TMP/nodata.cfg"
run_mpi 2 60 "$TMP/nodata.cfg"; expect_error "missing data directory" "nowhere"

run_mpi 2 60 "$TMP/does-not-exist.cfg"; expect_error "missing config file" "does-not-exist.cfg"

# the PCC term on a network without a prunable multi-pixel post-ReLU map
cfg 'prune = { protect_first = true; };' nomaps.cfg
sed -i 's/fmnist_cnn"; /custom"; layers = ( { type = "conv"; out = 4; k = 3; }, { type = "relu"; }, { type = "linear"; out = 10; } ); /; s/batch = 64; /batch = 64; pcc_lambda = 1; /' "$TMP/nomaps.cfg"
run_mpi 2 60 "$TMP/nomaps.cfg"; expect_error "PCC term without maps" "nomaps.cfg: train.pcc_lambda = 1: .*post-ReLU map"

# a truncated data file
mkdir -p "$TMP/cifar"
head -c 30000 "${DPRUNE_SHARED_DIR:-$SRC/../shared}/data/cifar10-subset/data_batch_1.bin" > "$TMP/cifar/data_batch_1.bin"
cp "${DPRUNE_SHARED_DIR:-$SRC/../shared}/data/cifar10-subset/test_batch.bin" "$TMP/cifar/"
printf '%s\n' "${base//RUN/$TMP/run}" | sed "s|fashion-mnist\"; |cifar10\"; path = \"$TMP/cifar\"; |; s/fmnist_cnn/resnet20/" > "$TMP/trunc.cfg"
run_mpi 2 60 "$TMP/trunc.cfg"; expect_error "truncated data file" "data_batch_1.bin"

# exactly one error line although both ranks failed
if [ "$(grep -c 'dprune: error' "$TMP/out")" -eq 1 ]; then ok "message printed once"; else bad "message printed $(grep -c 'dprune: error' "$TMP/out") times"; fi
finish
