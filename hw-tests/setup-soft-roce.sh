#!/usr/bin/env bash
# Creates a soft-RoCE RDMA device (rxe0) on top of an Ethernet interface, so
# the hw-tests can run on a machine without RDMA hardware.
# Needs root and a kernel with the rdma_rxe module; `rdma` is in iproute2.
#
# Usage: sudo hw-tests/setup-soft-roce.sh IFACE     (for example eth0)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 IFACE   (an Ethernet interface, see 'ip link')" >&2
    exit 2
fi
iface=$1

echo "+ modprobe rdma_rxe"
modprobe rdma_rxe

if grep -q '^link rxe0/' <<<"$(rdma link show)"; then
    echo "rxe0 already exists, not adding it again"
else
    echo "+ rdma link add rxe0 type rxe netdev $iface"
    rdma link add rxe0 type rxe netdev "$iface"
fi

echo "+ rdma link"
rdma link
