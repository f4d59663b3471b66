#!/usr/bin/python3
"""Build (once, cached) what tests/vm/run.sh boots: Debian's own kernel as an uncompressed
vmlinux, and a tiny initramfs (busybox-static, the virtio and 9p modules, an /init).

Usage: vmimage.py CACHE_DIR   prints "KERNEL_PATH INITRD_PATH KVER" on stdout.

Why uncompressed: under TCG, decompressing the bzImage costs seconds on every boot; the ELF
vmlinux boots through the PVH entry point that Debian's kernel has (CONFIG_PVH=y).
Why modules in dependency order: the initramfs has no modprobe; the order is taken from
`modprobe -S KVER --show-depends`, so `virtio_ring` comes before `virtio` and so on.
Everything is written to a temporary name and renamed, so a killed build leaves no half cache.
"""
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

# Modules the initramfs loads before it can mount the host's root over virtio-9p.
EARLY_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]

INIT = r"""#!/bin/busybox sh
# PID 1 of the test VM: mount the host's root read-only over virtio-9p, put a RAM overlay on
# it, run stage 2 of tests/vm/run.sh in a chroot, then power off. Stays PID 1 throughout.
/bin/busybox mkdir -p /proc /sys /dev /host /ovl /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
while read -r m; do /bin/busybox insmod "$m" || echo "vm: insmod $m failed"; done < /modules.list
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || {
    echo "vm: cannot mount the host root"; /bin/busybox poweroff -f; }
/bin/busybox mount -t tmpfs -o size=75% tmpfs /ovl
/bin/busybox mkdir -p /ovl/upper /ovl/work
/bin/busybox mount -t overlay overlay -o lowerdir=/host,upperdir=/ovl/upper,workdir=/ovl/work /newroot || {
    echo "vm: cannot mount the overlay"; /bin/busybox poweroff -f; }
/bin/busybox mkdir -p /newroot/vmout
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmout /newroot/vmout || {
    echo "vm: cannot mount the result share"; /bin/busybox poweroff -f; }
/bin/busybox chroot /newroot /bin/bash /vmout/stage2.sh
echo $? > /newroot/vmout/rc.init
/bin/busybox sync
/bin/busybox umount /newroot/vmout
/bin/busybox poweroff -f
"""


def newest_kernel():
    best = None
    for name in os.listdir("/boot"):
        m = re.fullmatch(r"vmlinuz-(\d+)\.(\d+)\.(\d+)-(\d+)-amd64", name)
        if m:
            ver = tuple(int(x) for x in m.groups())
            if best is None or ver > best[0]:
                best = (ver, name[len("vmlinuz-"):])
    if best is None:
        sys.exit("vmimage: no Debian kernel in /boot (install linux-image-amd64)")
    return best[1]


def extract_vmlinux(bzimage, out):
    data = open(bzimage, "rb").read()
    off = data.find(b"\xfd7zXZ\x00")
    if off < 0:
        sys.exit("vmimage: %s is not an xz-compressed kernel" % bzimage)
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = dec.decompress(data[off:])
    if elf[:4] != b"\x7fELF":
        sys.exit("vmimage: %s did not decompress to an ELF image" % bzimage)
    with open(out, "wb") as f:
        f.write(elf)


def module_paths(kver):
    seen, paths = set(), []
    for mod in EARLY_MODULES:
        r = subprocess.run(["modprobe", "-S", kver, "--show-depends", mod],
                           capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod" and parts[1] not in seen:
                seen.add(parts[1])
                paths.append(parts[1])
    return paths


def cpio_newc(entries, out):
    """entries: (name, mode, data bytes or None for a directory). Writes a newc archive."""
    ino = 1
    with open(out, "wb") as f:
        def put(name, mode, data):
            nonlocal ino
            nb = name.encode() + b"\x00"
            hdr = "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X" % (
                ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
            ino += 1
            f.write(hdr.encode() + nb)
            f.write(b"\x00" * ((4 - (110 + len(nb)) % 4) % 4))
            f.write(data)
            f.write(b"\x00" * ((4 - len(data) % 4) % 4))
        for name, mode, data in entries:
            put(name, mode, data if data is not None else b"")
        put("TRAILER!!!", 0, b"")


def build_initrd(kver, out):
    busybox = shutil.which("busybox") or "/bin/busybox"
    bb = open(busybox, "rb").read()
    if b"GLIBC" in bb[:65536] and not os.path.exists("/usr/share/doc/busybox-static"):
        sys.exit("vmimage: busybox is not the static one (install busybox-static)")
    entries = [("bin", stat.S_IFDIR | 0o755, None), ("lib", stat.S_IFDIR | 0o755, None),
               ("bin/busybox", stat.S_IFREG | 0o755, bb),
               ("bin/sh", stat.S_IFREG | 0o755, bb),
               ("init", stat.S_IFREG | 0o755, INIT.encode())]
    names = []
    for i, p in enumerate(module_paths(kver)):
        data = open(p, "rb").read()
        if p.endswith(".xz"):
            data = lzma.decompress(data)
        name = "lib/%02d-%s" % (i, os.path.basename(p).replace(".xz", ""))
        entries.append((name, stat.S_IFREG | 0o644, data))
        names.append("/" + name)
    entries.append(("modules.list", stat.S_IFREG | 0o644, ("\n".join(names) + "\n").encode()))
    cpio_newc(entries, out)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: vmimage.py CACHE_DIR")
    kver = newest_kernel()
    cache = os.path.join(sys.argv[1], kver)
    os.makedirs(cache, exist_ok=True)
    kernel = os.path.join(cache, "vmlinux")
    initrd = os.path.join(cache, "initrd.cpio")
    # The initramfs depends on this file's text too: rebuild it when the script changes.
    stamp = os.path.join(cache, "initrd.stamp")
    me = open(__file__, "rb").read()
    if not os.path.exists(kernel):
        fd, tmp = tempfile.mkstemp(dir=cache)
        os.close(fd)
        extract_vmlinux("/boot/vmlinuz-" + kver, tmp)
        os.rename(tmp, kernel)
    if not os.path.exists(initrd) or not os.path.exists(stamp) or open(stamp, "rb").read() != me:
        fd, tmp = tempfile.mkstemp(dir=cache)
        os.close(fd)
        build_initrd(kver, tmp)
        os.rename(tmp, initrd)
        with open(stamp + ".tmp", "wb") as f:
            f.write(me)
        os.rename(stamp + ".tmp", stamp)
    print(kernel, initrd, kver)


if __name__ == "__main__":
    main()
