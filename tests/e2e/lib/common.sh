# Shared helpers for the end-to-end scripts: sourced, not run.
# $1 of the script is the dprune binary; DPRUNE_SOURCE_DIR the checkout.
set -u
DPRUNE=${1:?usage: script PATH/TO/dprune}
SRC=${DPRUNE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TMP=$(mktemp -d /tmp/dprune-e2e.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# Open MPI leaves its shared-memory segments behind when a job aborts, as the failure tests
# make jobs do on purpose: keep them in $TMP (removed on exit), not in /dev/shm
mkdir -p "$TMP/mpi-shm"
export OMPI_MCA_btl_vader_backing_directory="$TMP/mpi-shm"
export OMP_NUM_THREADS=1
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# run_mpi N TIMEOUT ARGS...: runs dprune on N ranks; output in $TMP/out, status in $rc
run_mpi() {
  local n=$1 t=$2; shift 2
  rc=0
  timeout "$t" "$SRC/launch/mpirun" "$n" "$DPRUNE" "$@" >"$TMP/out" 2>&1 || rc=$?
}

# stop_mpi_when OUT CFG TRIES PAUSE TEST...: runs dprune CFG on 2 ranks in the background
# (output in OUT), runs TEST up to TRIES times PAUSE seconds apart until it holds, then sends
# SIGUSR1 (a stop with a checkpoint) and waits; status in $rc
stop_mpi_when() {
  local out=$1 cfg=$2 tries=$3 pause=$4 pid
  shift 4
  "$SRC/launch/mpirun" 2 "$DPRUNE" "$cfg" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 "$tries"); do "$@" && break; sleep "$pause"; done
  kill -USR1 "$pid"
  wait "$pid"; rc=$?
}

# expect_error NAME PATTERN: last run failed (not a timeout) and printed PATTERN once
expect_error() {
  local name=$1 pat=$2 count
  count=$(grep -c -E "dprune: error.*$pat" "$TMP/out" || true)
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$count" -ge 1 ]; then
    ok "$name (exit $rc)"
  else
    bad "$name: exit $rc, $count matching error lines; output:"
    tail -20 "$TMP/out"
  fi
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}
