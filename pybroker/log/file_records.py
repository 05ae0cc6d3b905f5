"""FileRecords: a segment's `.log` file (Kafka's FileRecords) and FileRegion, what a fetch returns.

Two sizes are tracked (redpanda's model, per segment): `dirty_size` — bytes queued to the writer,
where the next append goes; `size` — bytes written (visible to readers). Reads never go past
`size`. Bytes are written by the log dir's writer (pybroker/log/writer.py); everything else here is
called on the event loop.
"""
import ctypes
import errno
import os

_FALLOC_FL_KEEP_SIZE = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _fallocate = _libc.fallocate
    _fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)
except (OSError, AttributeError):        # not Linux/glibc: preallocation is advisory
    _fallocate = None


class FileRegion:
    """A byte range of a segment file, ready for `os.sendfile(out_fd, region.fd, position, length)`.

    `records` keeps the FileRecords alive; a deleted segment's file is only closed after
    `file.delete.delay.ms`, so a region handed to a fetch stays readable meanwhile."""

    __slots__ = ("records", "position", "length")

    def __init__(self, records, position, length):
        self.records = records
        self.position = position
        self.length = length

    @property
    def fd(self):
        return self.records.fd

    def __len__(self):
        return self.length

    def tobytes(self):
        return self.records.read(self.position, self.length)

    def __repr__(self):
        return f"FileRegion({self.records.path!r}, position={self.position}, length={self.length})"


class FileRecords:
    def __init__(self, path, create=False):
        self.path = path
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        self.fd = os.open(path, flags, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.dirty_size = self.size
        self.preallocated = False

    # ---- reads ---------------------------------------------------------------------------

    def source(self):
        """What the compiled header scans read from (an fd)."""
        return self.fd

    def region(self, position, length):
        return FileRegion(self, position, length)

    def read(self, position, length):
        """Bytes [position, position + length), at most up to the written size."""
        length = max(0, min(length, self.size - position))
        chunks, got = [], 0
        while got < length:
            chunk = os.pread(self.fd, length - got, position + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def file_size(self):
        return os.fstat(self.fd).st_size

    # ---- writes ----------------------------------------------------------------------------

    def append_async(self, writer, data, done):
        """Queue `data` at dirty_size; `done(exc)` runs on the loop once written."""
        position = self.dirty_size
        self.dirty_size += len(data)
        writer.submit_write(self.fd, data, position, done)
        return position

    def on_written(self, end_position):
        self.size = max(self.size, end_position)

    def truncate_to(self, size):
        """Cut the file to `size` bytes (the writer must be drained); returns bytes removed."""
        removed = self.size - size if self.size > size else 0
        os.ftruncate(self.fd, size)
        self.size = self.dirty_size = size
        return removed

    def flush(self):
        if self.fd >= 0:                  # a segment swapped out and closed: nothing to sync
            os.fsync(self.fd)

    # ---- preallocate (the topic's `preallocate` config) ------------------------------------

    def preallocate(self, nbytes):
        """Reserve disk blocks for `nbytes` without changing the file's size (fallocate
        KEEP_SIZE), so readers and recovery never see preallocated zeros. False when the file
        system cannot (the config is then a no-op for this file)."""
        if _fallocate is None or nbytes <= 0:
            return False
        if _fallocate(self.fd, _FALLOC_FL_KEEP_SIZE, 0, nbytes) != 0:
            err = ctypes.get_errno()
            if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise OSError(err, f"fallocate {self.path}: {os.strerror(err)}")
        self.preallocated = True
        return True

    def trim_preallocation(self):
        """Release the reserved blocks past the data (writer thread, after the last write)."""
        if self.preallocated and self.fd >= 0:
            os.ftruncate(self.fd, os.fstat(self.fd).st_size)
            self.preallocated = False

    # ---- lifecycle -------------------------------------------------------------------------

    def close(self):
        if self.fd >= 0:
            self.trim_preallocation()
            os.close(self.fd)
            self.fd = -1

    def rename_to(self, path):
        os.rename(self.path, path)
        self.path = path

    def delete_if_exists(self):
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        return True
