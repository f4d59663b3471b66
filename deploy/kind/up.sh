#!/usr/bin/env bash
# Install Ordinal into a kind cluster and prove it works (README: "Install into kind").
#   deploy/kind/up.sh [--lvm]
# Needs docker, kind, kubectl, buildah and debootstrap (tools/image.sh); root for the loop
# devices of --lvm (sudo is used when not root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
cluster=ordinal
overlay=kind
[ "${1:-}" = --lvm ] && overlay=kind-lvm
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

echo "1. cluster"
"${sudo[@]}" mkdir -p /var/lib/ordinal-kind/worker /var/lib/ordinal-kind/worker2
kind get clusters | grep -qx "$cluster" || kind create cluster --config "$here/cluster.yaml"
kubectl config use-context "kind-$cluster" >/dev/null

echo "2. image"
archive=$src/build/image/ordinal-csi.tar
bash "$src/tools/image.sh" --tag ordinal-csi:dev --out "$archive"
kind load image-archive "$archive" --name "$cluster"

if [ "$overlay" = kind-lvm ]; then
    echo "3. a loop-backed volume group per worker (ordinal-<node>: the nodes share /dev)"
    mkdir -p "$src/build/kind"
    for node in $(kind get nodes --name "$cluster" | grep worker); do
        img=$src/build/kind/$node.img
        [ -f "$img" ] || truncate -s 4G "$img"
        loop=$("${sudo[@]}" losetup -j "$img" | cut -d: -f1)
        [ -n "$loop" ] || loop=$("${sudo[@]}" losetup -f --show "$img")
        "${sudo[@]}" vgs "ordinal-$node" >/dev/null 2>&1 ||
            "${sudo[@]}" vgcreate "ordinal-$node" "$loop"
    done
fi

echo "4. Ordinal (overlay $overlay)"
# kind's own default class steps aside: ours is the default.
kubectl annotate storageclass standard storageclass.kubernetes.io/is-default-class- >/dev/null 2>&1 || true
kubectl apply -k "$src/deploy/kubernetes/overlays/$overlay"
kubectl -n ordinal-system rollout status daemonset/ordinal-node --timeout=180s
kubectl -n ordinal-system rollout status deployment/ordinal-controller --timeout=180s

echo "5. smoke test: StatefulSet web, 3 replicas, one claim each"
kubectl apply -f "$here/smoke.yaml"
kubectl rollout status statefulset/web --timeout=300s
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/www-web-0 pvc/www-web-1 pvc/www-web-2 --timeout=60s
kubectl get statefulset web
kubectl get pvc -l app=nginx
echo "Ordinal is installed; remove everything with deploy/kind/down.sh"
