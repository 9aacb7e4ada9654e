#!/usr/bin/env bash
# Creates a soft-RoCE RDMA device (rxe0) on top of an Ethernet interface, so
# the hw-tests can run on a machine without RDMA hardware, and checks that
# the device is usable (listed by libibverbs, port 1 ACTIVE).
# Needs root, a kernel with the rdma_rxe module (loaded, or loadable with
# modprobe), and iproute2's `rdma`; `ibv_devices` (ibverbs-utils) is used
# for the check when present. Many container and cloud kernels lack
# rdma_rxe or hide the RDMA netlink interface: the script says which.
#
# Usage: sudo hw-tests/setup-soft-roce.sh IFACE     (for example eth0)
# Then:  cargo test -p govfs-hw-tests --features rdma -- --nocapture
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 IFACE   (an Ethernet interface, see 'ip link')" >&2
    exit 2
fi
iface=$1
dev=rxe0

fail() {
    echo "soft-RoCE setup failed: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root"
command -v rdma >/dev/null 2>&1 || fail "'rdma' not found (install iproute2)"
ip link show "$iface" >/dev/null 2>&1 || fail "no interface $iface (see 'ip link')"

if [[ -d /sys/module/rdma_rxe ]]; then
    echo "rdma_rxe: loaded"
elif command -v modprobe >/dev/null 2>&1; then
    echo "+ modprobe rdma_rxe"
    modprobe rdma_rxe || fail "modprobe rdma_rxe failed: this kernel has no soft-RoCE module"
else
    echo "WARNING: rdma_rxe not loaded and no modprobe; trying anyway (it may be built in)" >&2
fi

if ! links=$(rdma link show 2>&1); then
    fail "'rdma link show' failed (${links}): no RDMA netlink in this kernel or container"
fi

if grep -q "^link ${dev}/" <<<"$links"; then
    echo "${dev} already exists, not adding it again"
else
    echo "+ rdma link add ${dev} type rxe netdev ${iface}"
    rdma link add "$dev" type rxe netdev "$iface" || fail "could not add ${dev} on ${iface}"
fi

echo "+ rdma link show ${dev}/1"
state=$(rdma link show "${dev}/1")
echo "$state"
grep -q "state ACTIVE" <<<"$state" ||
    fail "${dev} port 1 is not ACTIVE (is ${iface} up?)"

[[ -d /sys/class/infiniband/${dev} ]] || fail "${dev} missing from /sys/class/infiniband"

if command -v ibv_devices >/dev/null 2>&1; then
    echo "+ ibv_devices"
    ibv_devices
    ibv_devices | grep -qw "$dev" || fail "libibverbs does not list ${dev} (rdma-core providers installed?)"
fi

echo "soft-RoCE ready: ${dev} on ${iface}"
