"""In-memory storage: the same segment/index interface without a disk (tests, ephemeral brokers).

MemoryRecords keeps a segment's bytes in a bytearray that grows by doubling. A fetch gets a
memoryview of the buffer; the buffer is never resized or overwritten under a view: growth and
truncation copy into a fresh bytearray, so a view handed out earlier keeps the bytes it saw.
Writes complete immediately (a memory copy), so `done` runs inline.
"""


class MemoryRecords:
    path = None

    def __init__(self, initial_capacity=4096):
        self._buf = bytearray(initial_capacity)
        self.size = 0
        self.dirty_size = 0

    def source(self):
        return memoryview(self._buf)[:self.size]

    def region(self, position, length):
        return memoryview(self._buf)[position:position + max(0, min(length, self.size - position))]

    def read(self, position, length):
        return bytes(self.region(position, length))

    def file_size(self):
        return self.size

    def append_async(self, writer, data, done):
        position = self.dirty_size
        end = position + len(data)
        if end > len(self._buf):
            grown = bytearray(max(end, 2 * len(self._buf)))
            grown[:self.size] = self._buf[:self.size]
            self._buf = grown
        self._buf[position:end] = data
        self.dirty_size = end
        done(None)
        return position

    def on_written(self, end_position):
        self.size = max(self.size, end_position)

    def truncate_to(self, size):
        removed = self.size - size if self.size > size else 0
        fresh = bytearray(max(size, 4096))
        fresh[:size] = self._buf[:size]
        self._buf = fresh
        self.size = self.dirty_size = size
        return removed

    def flush(self):
        return None

    def preallocate(self, nbytes):
        return False

    def trim_preallocation(self):
        return None

    def close(self):
        return None

    def rename_to(self, path):
        return None

    def delete_if_exists(self):
        self._buf = bytearray(0)
        self.size = self.dirty_size = 0
        return True
