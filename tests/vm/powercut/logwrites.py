"""Read a dm-log-writes log and replay a prefix of it onto a device.

The log device holds, at byte 0, a super block (little endian: u64 magic, u64 version,
u64 number of entries, u32 sector size). Entries follow from the second log sector on, in
completion order as the device saw them durable: each is one log sector starting with a header
(u64 target sector, u64 number of sectors, u64 flags, u64 length of inline data; a mark's name is
that inline data, right after the header in the same sector), then, unless it is a discard, the
written data itself (number-of-sectors log sectors). Sector numbers and counts are in units of
the log's sector size; positions on the log device advance in those units too.

Flags: FLUSH (a cache flush completed: everything logged before it was on stable media),
FUA (a write that bypassed the cache), DISCARD (no data follows), MARK (a user mark).

Replaying the first n entries onto a blank device of the same size gives the device as a power
cut right after entry n would have left it (the writes between two flushes may land in any
order; a prefix is one of the possible outcomes).
"""

import os
import struct

MAGIC = 0x6A736677736872
VERSION = 1
FLUSH, FUA, DISCARD, MARK, METADATA = 1, 2, 4, 8, 16

_SUPER = struct.Struct("<QQQI")
_ENTRY = struct.Struct("<QQQQ")


class LogError(Exception):
    pass


class Entry:
    __slots__ = ("index", "sector", "nr_sectors", "flags", "mark", "data_off")

    def __init__(self, index, sector, nr_sectors, flags, mark, data_off):
        self.index = index
        self.sector = sector
        self.nr_sectors = nr_sectors
        self.flags = flags
        self.mark = mark
        self.data_off = data_off  # byte offset of the data on the log device, or None

    def __repr__(self):
        names = [n for n, f in (("FLUSH", FLUSH), ("FUA", FUA), ("DISCARD", DISCARD),
                                ("MARK", MARK), ("METADATA", METADATA)) if self.flags & f]
        return "<entry %d %s sector %d +%d%s>" % (self.index, "|".join(names) or "WRITE",
                                                 self.sector, self.nr_sectors,
                                                 " mark %r" % self.mark if self.mark else "")


def read_log(path):
    """(sector_size, [Entry]) of the log on the device or file at path."""
    with open(path, "rb") as f:
        head = f.read(_SUPER.size)
        if len(head) < _SUPER.size:
            raise LogError("%s: too short for a log super block" % path)
        magic, version, n, ssize = _SUPER.unpack(head)
        if magic != MAGIC:
            raise LogError("%s: bad magic %#x (not a dm-log-writes log)" % (path, magic))
        if version != VERSION:
            raise LogError("%s: log version %d, this reader knows %d" % (path, version, VERSION))
        if ssize < 512 or ssize & (ssize - 1):
            raise LogError("%s: odd sector size %d" % (path, ssize))
        entries = []
        pos = ssize
        for i in range(n):
            f.seek(pos)
            blk = f.read(ssize)
            if len(blk) < ssize:
                raise LogError("%s: entry %d of %d cut short at byte %d" % (path, i, n, pos))
            sector, nr, flags, dlen = _ENTRY.unpack_from(blk)
            mark = None
            if flags & MARK:
                if dlen > ssize - _ENTRY.size:
                    raise LogError("%s: entry %d: mark of %d bytes" % (path, i, dlen))
                mark = blk[_ENTRY.size:_ENTRY.size + dlen].decode("utf-8", "replace")
            pos += ssize
            data_off = None
            if not flags & DISCARD and nr:
                data_off = pos
                pos += nr * ssize
            entries.append(Entry(i, sector, nr, flags, mark, data_off))
    return ssize, entries


class Replayer:
    """Applies log entries in order onto a target device; position() entries are applied."""

    CHUNK = 1 << 20

    def __init__(self, log_path, target_path, sector_size, entries):
        self.log = open(log_path, "rb")
        self.fd = os.open(target_path, os.O_RDWR)
        self.ssize = sector_size
        self.entries = entries
        self.pos = 0
        self.bytes = 0

    def close(self):
        self.log.close()
        os.close(self.fd)

    def position(self):
        return self.pos

    def advance(self, upto):
        """Apply entries [position(), upto); then make the target's content durable, so a
        device stacked on it (a snapshot) reads it."""
        if upto < self.pos:
            raise LogError("cannot go back from %d to %d" % (self.pos, upto))
        for e in self.entries[self.pos:upto]:
            off = e.sector * self.ssize
            length = e.nr_sectors * self.ssize
            if e.flags & DISCARD:
                # What a discarded range reads back as is undefined; zeros is one outcome.
                zero = bytes(min(length, self.CHUNK))
                done = 0
                while done < length:
                    k = min(len(zero), length - done)
                    os.pwrite(self.fd, zero[:k], off + done)
                    done += k
            elif e.data_off is not None:
                done = 0
                while done < length:
                    k = min(self.CHUNK, length - done)
                    self.log.seek(e.data_off + done)
                    buf = self.log.read(k)
                    if len(buf) != k:
                        raise LogError("entry %d: data cut short" % e.index)
                    os.pwrite(self.fd, buf, off + done)
                    done += k
                self.bytes += length
        self.pos = upto
        os.fsync(self.fd)


def marks(entries):
    """{mark name: entry index} (the first entry with that mark)."""
    out = {}
    for e in entries:
        if e.mark is not None and e.mark not in out:
            out[e.mark] = e.index
    return out
