"""asv benchmarks for CRC-32C: our compiled paths against the `crc32c` and `google_crc32c` packages.

Sizes are a batch of small records (16 KiB), a typical produce batch (64 KiB) and a large
fetch/segment read (1 MiB). The plain-script twin is bench/crc32c_bench.py.
"""
import random

KIB = 1024
SIZES = [16 * KIB, 64 * KIB, 1024 * KIB]
IMPLEMENTATIONS = ["ours", "ours-sse4.2", "ours-portable", "ours-pure", "crc32c", "google_crc32c"]


def make_function(name):
    """The crc function for `name`; forces the compiled module's path (undo with restore())."""
    if name.startswith("ours"):
        if name == "ours-pure":
            from pybroker.codec._pure import crc32c as mod
            return mod.crc32c
        from pybroker_core import crc32c as mod
        path = {"ours": None, "ours-sse4.2": "sse4.2", "ours-portable": "portable"}[name]
        if path is not None and path not in mod.available():
            raise NotImplementedError(f"this CPU has no {path} path")
        mod.force_implementation(path)
        return mod.crc32c
    if name == "crc32c":
        import crc32c
        return crc32c.crc32c
    import google_crc32c
    return google_crc32c.value


def restore():
    from pybroker_core import crc32c as mod
    mod.force_implementation(None)


class CRC32C:
    params = (IMPLEMENTATIONS, SIZES)
    param_names = ["implementation", "size"]

    def setup(self, name, size):
        if name == "ours-pure" and size > 16 * KIB:
            raise NotImplementedError("the pure twin is only timed at 16 KiB")
        self.fn = make_function(name)
        self.data = random.Random(size).randbytes(size)

    def teardown(self, name, size):
        restore()

    def time_crc32c(self, name, size):
        self.fn(self.data)
