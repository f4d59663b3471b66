#!/usr/bin/env bash
# Remove what deploy/kind/up.sh made: the cluster, the volume groups and loop devices of --lvm,
# the node data roots.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
cluster=ordinal
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

nodes=$(kind get nodes --name "$cluster" 2>/dev/null | grep worker || true)
kind delete cluster --name "$cluster"
for node in $nodes; do
    "${sudo[@]}" vgremove -f "ordinal-$node" >/dev/null 2>&1 || true
done
for img in "$src"/build/kind/*.img; do
    [ -f "$img" ] || continue
    for loop in $("${sudo[@]}" losetup -j "$img" | cut -d: -f1); do
        "${sudo[@]}" losetup -d "$loop"
    done
    rm -f "$img"
done
"${sudo[@]}" rm -rf /var/lib/ordinal-kind
