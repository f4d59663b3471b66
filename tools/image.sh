#!/usr/bin/env bash
# Build Ordinal's container image from deploy/Dockerfile without a Docker daemon, check it, and
# write a docker-archive for `kind load image-archive`.
#
#   bash tools/image.sh [--tag ordinal-csi:dev] [--out build/image/ordinal-csi.tar] [--check-only]
#
# 1. The base image `debian:bookworm` is made with debootstrap (minbase) from the mirror of this
#    machine's apt sources, cached as a tarball in $ORDINAL_IMAGE_CACHE (/var/cache/ordinal/image)
#    and imported into buildah's local storage: no registry is needed.
# 2. buildah builds deploy/Dockerfile (vfs storage, chroot isolation: no daemon, no overlayfs).
# 3. The check runs `ordinal-csi --version` and `--help` and `kubectl-ordinal --help` in the image, fails if ldd reports a
#    missing library, and prints the image size.
# 4. `buildah push` writes the docker-archive.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
tag=ordinal-csi:dev
out=$src/build/image/ordinal-csi.tar
check_only=0
while (($#)); do
    case $1 in
        --tag) tag=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --check-only) check_only=1; shift ;;
        *) echo "usage: $0 [--tag NAME:TAG] [--out PATH] [--check-only]" >&2; exit 2 ;;
    esac
done

cache=${ORDINAL_IMAGE_CACHE:-/var/cache/ordinal/image}
bah=(buildah --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || { echo "image: $tool is not installed (tools/deps.sh)" >&2; exit 1; }
done

# The first deb822 or one-line source of this machine for the main archive.
mirror() {
    local m
    m=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        head -n1 | sed 's/^URIs: *//')
    if [ -z "$m" ]; then
        m=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null |
            head -n1 | awk '{print $2}')
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

base_tar=$cache/debian-bookworm-minbase.tar
if [ ! -s "$base_tar" ]; then
    m=$(mirror)
    echo "image: debootstrap bookworm from $m (cached in $base_tar)"
    mkdir -p "$cache"
    root=$(mktemp -d "$cache/root.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "$m" >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    # apt inside the image uses the same mirror; no caches or logs in the layer.
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$m" "$m" >"$root/etc/apt/sources.list"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    tar -C "$root" --numeric-owner -cf "$base_tar.tmp" .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf "$root"
    trap - EXIT
fi

if ! "${bah[@]}" inspect --type image debian:bookworm >/dev/null 2>&1; then
    echo "image: importing $base_tar as debian:bookworm"
    ctr=$("${bah[@]}" from scratch)
    mnt=$("${bah[@]}" mount "$ctr")
    tar -C "$mnt" --numeric-owner -xf "$base_tar"
    "${bah[@]}" umount "$ctr" >/dev/null
    "${bah[@]}" config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    "${bah[@]}" commit --rm "$ctr" debian:bookworm >/dev/null
fi

version=$(sed -nE 's/^project\(ordinal VERSION ([0-9.]+).*/\1/p' "$src/CMakeLists.txt")
revision=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
source=$(git -C "$src" remote get-url origin 2>/dev/null || echo "file://$src")
start=$SECONDS
if ((!check_only)) || ! "${bah[@]}" inspect --type image "$tag" >/dev/null 2>&1; then
    echo "image: building $tag (version ${version:-?}, revision $revision)"
    previous=$("${bah[@]}" inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null || true)
    "${bah[@]}" build --isolation chroot --pull=false --layers=false \
        --build-arg "VERSION=${version:-0.0.0}" --build-arg "REVISION=$revision" --build-arg "SOURCE=$source" \
        -f "$src/deploy/Dockerfile" -t "$tag" "$src"
    echo "image: built in $((SECONDS - start)) s"
    # The image the tag named before is left without a name: remove it (only that one).
    now=$("${bah[@]}" inspect --type image --format '{{.FromImageID}}' "$tag")
    if [ -n "$previous" ] && [ "$previous" != "$now" ]; then
        "${bah[@]}" rmi "$previous" >/dev/null 2>&1 || true
    fi
fi

# Check: the binary runs in the image and every shared library resolves.
ctr=$("${bah[@]}" from --pull=false "$tag")
trap '"${bah[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
"${bah[@]}" run --isolation chroot "$ctr" -- ordinal-csi --version
"${bah[@]}" run --isolation chroot "$ctr" -- ordinal-csi --help >/dev/null
"${bah[@]}" run --isolation chroot "$ctr" -- kubectl-ordinal --help >/dev/null
for b in ordinal-csi kubectl-ordinal lvm mkfs.ext4 mkfs.xfs mount blkid; do
    # shellcheck disable=SC2016 # expanded by the image's sh, not here
    libs=$("${bah[@]}" run --isolation chroot "$ctr" -- sh -c 'ldd "$(command -v "$1")"' sh "$b")
    if grep -q 'not found' <<<"$libs"; then
        echo "image: $b: missing libraries:" >&2
        grep 'not found' <<<"$libs" >&2
        exit 1
    fi
done
echo "image: ordinal-csi, kubectl-ordinal, lvm, mkfs.ext4, mkfs.xfs, mount, blkid: all libraries found"
"${bah[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -F "${tag%%:*}" || true

if ((!check_only)); then
    mkdir -p "$(dirname "$out")"
    rm -f "$out"
    "${bah[@]}" push "$tag" "docker-archive:$out:$tag" >/dev/null
    echo "image: wrote $out ($(du -h "$out" | cut -f1)); load it with: kind load image-archive $out"
fi
