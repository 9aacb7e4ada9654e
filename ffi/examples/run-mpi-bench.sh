#!/usr/bin/env bash
# The MPI benchmark: N-1 shared-file writes under region leases against a
# file per process, in one run, as a ratio (goal: shared >= 80% of fpp).
#
#   ffi/examples/run-mpi-bench.sh [RANKS [ROWS [ROW_SIZE [REPS]]]]
#
# Builds mpi_rows.c with mpicc against target/release (building the
# library and the govfs binary if missing), starts a local 3-node cluster
# (govfs cluster up --app meta) in a temporary directory, runs
# `mpirun -np RANKS ./mpi_rows bench ROWS ROW_SIZE REPS` and stops the
# cluster. Defaults: 2 ranks, 64 rows of 1 MiB per rank, 5 rounds.
set -euo pipefail

ranks=${1:-2}
rows=${2:-64}
row_size=${3:-1048576}
reps=${4:-5}

root=$(cd "$(dirname "$0")/../.." && pwd)
release="$root/target/release"
for f in govfs libgovfs_ffi.so govfs.pc; do
    if [ ! -e "$release/$f" ]; then
        (cd "$root" && cargo build --release -p govfs-ffi -p govfs-tools --bin govfs --lib)
        break
    fi
done
for tool in mpicc mpirun; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/govfs-mpi-bench-XXXXXX)
cleanup() {
    "$release/govfs" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

mpicc -std=c11 -O2 -Wall -Wextra "$root/ffi/examples/mpi_rows.c" \
    $(PKG_CONFIG_PATH="$release" pkg-config --cflags --libs govfs) -o "$work/mpi_rows"
mkdir "$work/cluster"
env_lines=$("$release/govfs" cluster up --nodes 3 --app meta --wait 60 --dir "$work/cluster")
GOVFS_CLUSTER=$(sed -n 's/^GOVFS_CLUSTER=//p' <<<"$env_lines")
export GOVFS_CLUSTER GOVFS_KEY_FILE="$work/cluster/cluster.key" LD_LIBRARY_PATH="$release"

echo "# $(nproc) cores; 3 nodes on loopback in $work/cluster; $ranks ranks x $rows rows x $row_size B, $reps rounds"
mpirun --allow-run-as-root --oversubscribe -np "$ranks" \
    -x GOVFS_CLUSTER -x GOVFS_KEY_FILE -x LD_LIBRARY_PATH \
    "$work/mpi_rows" bench "$rows" "$row_size" "$reps"
