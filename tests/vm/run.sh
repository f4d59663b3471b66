#!/usr/bin/env bash
# Run one command in a throwaway VM with Debian's own kernel (device-mapper, thin pools, project
# quotas, dm-log-writes: what this machine's kernel lacks), and return its exit code.
#
#   tests/vm/run.sh [--disk SIZE]... [--mem MiB] [--timeout SECONDS] [--env NAME]... -- CMD [ARG]...
#
# The VM (qemu under TCG: KVM does not work on this machine class) boots an uncompressed copy of
# the installed Debian kernel with a tiny busybox initramfs (tests/vm/vmimage.py, cached under
# $ORDINAL_VM_CACHE, default /var/cache/ordinal/vm). The host's / is mounted read-only over
# virtio-9p with a RAM overlay on top, so every host binary (lvm2, mkfs, the freshly built
# ordinal-csi, python3) runs inside against the VM's kernel; writes land in RAM and vanish.
# Each --disk SIZE adds a sparse raw disk: /dev/vda, /dev/vdb, ... in order. The command runs as
# root in the current directory with ORDINAL_*, CI, PATH and HOME (and each --env NAME) passed
# in, output on this terminal. Exit code: the command's, or 125 when the VM itself failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
disks=() mem=2048 timeout_s=1800 envs=()
while (($#)); do
    case "$1" in
    --disk) [[ ${2:-} =~ ^[0-9]+[MG]$ ]] || { echo "run.sh: --disk wants SIZE like 512M or 4G" >&2; exit 2; }
        disks+=("$2"); shift 2 ;;
    --mem)
        if ! [[ ${2:-} =~ ^[0-9]+$ ]] || ((${2} < 256)); then
            echo "run.sh: --mem wants MiB >= 256" >&2
            exit 2
        fi
        mem=$2; shift 2 ;;
    --timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "run.sh: --timeout wants seconds" >&2; exit 2; }
        timeout_s=$2; shift 2 ;;
    --env) [[ ${2:-} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "run.sh: --env wants a variable name" >&2; exit 2; }
        envs+=("$2"); shift 2 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
(($#)) || { echo "usage: run.sh [--disk SIZE]... [--mem MiB] [--timeout S] [--env NAME]... -- CMD [ARG]..." >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "run.sh: qemu-system-x86 is missing (tools/deps.sh installs it)" >&2; exit 125; }

cache=${ORDINAL_VM_CACHE:-/var/cache/ordinal/vm}
mkdir -p "$cache"
read -r kernel initrd kver < <(/usr/bin/python3 "$here/vmimage.py" "$cache")

work=$(mktemp -d /tmp/ordinal-vm.XXXXXX)
qpid=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ -n "$qpid" ]; then
        kill -9 "$qpid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/out"

# Stage 2 runs in the chroot on the overlay: a normal Debian userland with the VM's kernel.
# The fixed part is written verbatim; then the directory, the environment and the command.
cat > "$work/out/stage2.sh" <<'STAGE2'
#!/bin/bash
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
# /tmp stays the overlay's (RAM already): a tmpfs there would hide a checkout under /tmp
mount -t tmpfs tmpfs /run
for m in virtio_blk loop dm_mod dm_thin_pool dm_snapshot dm_log_writes dm_flakey ext4 xfs quota_v2; do
    modprobe "$m" 2>/dev/null || echo "vm: modprobe $m failed"
done
# No udev in the VM: LVM must not wait for it (the same setting a udev-less node plugin needs).
mkdir -p /etc/lvm
printf 'activation {\n    udev_sync = 0\n    udev_rules = 0\n}\n' > /etc/lvm/lvm.conf
ip link set lo up 2>/dev/null || true
hostname ordinal-vm
STAGE2
{
    printf 'cd %q || exit 125\n' "$PWD"
    for v in PATH HOME CI "${envs[@]}" $(compgen -e | grep '^ORDINAL_' || true); do
        [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
    done
    printf '%q ' "$@"
    echo
    cat <<'TAIL'
rc=$?; echo $rc > /vmout/rc; sync; exit $rc
TAIL
} >> "$work/out/stage2.sh"

drives=()
for i in "${!disks[@]}"; do
    truncate -s "${disks[$i]}" "$work/disk$i.raw"
    drives+=(-drive "file=$work/disk$i.raw,if=virtio,format=raw,cache=unsafe")
done

: > "$work/out/console"
timeout -s KILL "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m "$mem" -nodefaults -no-user-config \
    -display none -no-reboot \
    -chardev "file,id=con,path=$work/out/console" -serial chardev:con \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
    -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev "local,id=vmout,path=$work/out,security_model=none,multidevs=remap" \
    -device virtio-9p-pci,fsdev=vmout,mount_tag=vmout \
    "${drives[@]}" &
qpid=$!
tail -n +1 -f --pid="$qpid" "$work/out/console" | grep --line-buffered -v "^\[ *[0-9.]*\] reboot: Power down" &
tpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$tpid" 2>/dev/null || true
((qrc != 137)) || echo "run.sh: VM killed after ${timeout_s}s" >&2
if [ -s "$work/out/rc" ]; then
    exit "$(cat "$work/out/rc")"
fi
echo "run.sh: the VM ended without the command's exit code (kernel $kver)" >&2
exit 125
