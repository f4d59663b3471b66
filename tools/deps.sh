#!/usr/bin/env bash
# Install what building and testing Ordinal needs on Debian 12, only if something is missing.
set -euo pipefail

# One package per line, so that additions merge cleanly.
pkgs=(
    build-essential
    cmake
    pkg-config
    libgrpc-dev
    libprotobuf-c-dev
    protobuf-c-compiler
    protobuf-compiler
    libprotobuf-dev
    libcurl4-openssl-dev
    libcjson-dev
    zlib1g-dev
    libyaml-dev
    libcmocka-dev
    python3
    python3-grpcio
    python3-protobuf
    python3-pytest
    python3-prometheus-client
    clang-format
    clang
    libclang-rt-14-dev
    valgrind
    util-linux
    e2fsprogs
    xfsprogs
    lvm2
    openssl
    qemu-system-x86
    linux-image-amd64
    busybox-static
    thin-provisioning-tools
    kmod
    bubblewrap
    python3-yaml
    shellcheck
    buildah
    debootstrap
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: need root to install packages" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
