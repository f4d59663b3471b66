"""Start a program in a mount namespace of its own with some directories bind-mounted into
it, for the sandbox's node plugins (ordinal-sandbox, NodePlugin): the ServiceAccount token
volume at /var/run/secrets/kubernetes.io/serviceaccount, where the daemon's in-cluster config
reads it.

    podns.py [--ro-bind SRC DST]... -- PROGRAM ARG...

Every other mount is the host's: mounts the program makes under a shared mount of the host
(the sandbox makes each node's kubelet folder one) propagate back, as a Bidirectional
volumeMount does. The mount holding each DST is made a slave first (that mount only, not its
submounts), so the binds never propagate to the host. DST must exist. Exit 125 when the
namespace cannot be set up; otherwise PROGRAM replaces this process (same pid).
"""

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_SLAVE = 1 << 19


def _unescape(p):
    out, i = "", 0
    while i < len(p):
        if p[i] == "\\" and p[i + 1:i + 4].isdigit():
            out += chr(int(p[i + 1:i + 4], 8))
            i += 4
        else:
            out += p[i]
            i += 1
    return out


def mount_of(path):
    """(mount point, shared) of the mount holding path."""
    best, shared = "/", False
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = _unescape(fields[4])
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                opt = fields[6:fields.index("-")]
                best, shared = mp, any(o.startswith("shared:") for o in opt)
    return best, shared


def fail(msg):
    sys.stderr.write("podns: %s\n" % msg)
    sys.exit(125)


def main(argv):
    binds = []
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--ro-bind" and i + 2 < len(argv):
            binds.append((argv[i + 1], argv[i + 2]))
            i += 3
        else:
            fail("usage: podns.py [--ro-bind SRC DST]... -- PROGRAM ARG...")
    prog = argv[i + 1:]
    if not prog:
        fail("no program")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]

    def mount(src, dst, flags, what):
        if libc.mount(src, dst.encode(), None, flags, None) != 0:
            fail("%s %s: %s" % (what, dst, os.strerror(ctypes.get_errno())))
    if libc.unshare(CLONE_NEWNS) != 0:
        fail("unshare(CLONE_NEWNS): %s" % os.strerror(ctypes.get_errno()))
    for src, dst in binds:
        if not os.path.isdir(dst):
            fail("mount point %s does not exist" % dst)
        mp, shared = mount_of(dst)
        if shared:
            mount(None, mp, MS_SLAVE, "make-slave")
        mount(src.encode(), dst, MS_BIND, "bind onto")
        mount(None, dst, MS_BIND | MS_REMOUNT | MS_RDONLY, "read-only remount of")
    try:
        os.execv(prog[0], prog)
    except OSError as e:
        fail("exec %s: %s" % (prog[0], e))


if __name__ == "__main__":
    main(sys.argv[1:])
