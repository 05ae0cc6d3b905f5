"""asv benchmarks for record batches v2 (pybroker_core.records and its pure twin).

* ValidateBatch: header + CRC-32C check of a 1 MiB uncompressed batch (no record decoding)
  against a plain crc32c() of the same buffer: validation should cost little beyond the CRC.
* BuildBatch / ParseBatch: 1,000 records with 1 KiB values (16-byte keys, no headers), for each
  codec, ours compiled vs ours pure vs aiokafka's Cython codec (aiokafka.record._crecords).
  Values are 256 random bytes repeated four times, so every codec has something to do.
  Parsing touches every record's key and value.

Plain-script twin: bench/records_bench.py (one run, one table, with ratios).
"""
import random

KIB = 1024
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
IMPLEMENTATIONS = ["compiled", "pure", "aiokafka"]
RECORD_COUNT = 1000
BASE_TS = 1_700_000_000_000


def make_records(count=RECORD_COUNT, value_size=KIB):
    rng = random.Random(count * 31 + value_size)
    return [(b"key-%012d" % i, rng.randbytes(value_size // 4) * 4, [], BASE_TS + i)
            for i in range(count)]


def records_module(name):
    if name == "compiled":
        from pybroker_core import records
        return records
    from pybroker.codec._pure import records
    return records


def make_builder(name, codec):
    """A zero-argument-per-call function: build(records) -> bytes, for implementation `name`."""
    if name == "aiokafka":
        from aiokafka.record._crecords import DefaultRecordBatchBuilder

        def build(records):
            b = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 30)
            for offset, (key, value, headers, ts) in enumerate(records):
                b.append(offset, ts, key, value, headers)
            return bytes(b.build())
        return build
    mod = records_module(name)
    return lambda records: mod.build_batch(records, compression=codec)


def make_parser(name):
    """parse(buf) -> number of value bytes seen, iterating every record."""
    if name == "aiokafka":
        from aiokafka.record._crecords import DefaultRecordBatch

        def parse(buf):
            n = 0
            for r in DefaultRecordBatch(buf):
                n += len(r.value) + len(r.key)
            return n
        return parse
    mod = records_module(name)

    def parse(buf):
        n = 0
        for r in mod.RecordBatch(buf).records():
            n += len(r.value) + len(r.key)
        return n
    return parse


def make_validator(name):
    """validate(buf): ours validate() on the batch, or 'crc32c' = a plain CRC of the buffer."""
    if name == "crc32c":
        from pybroker_core.crc32c import crc32c
        return crc32c
    mod = records_module(name)
    return lambda buf: mod.RecordBatch(buf).validate()


def one_mib_batch():
    """An uncompressed batch of about 1 MiB (1,000 records of 1 KiB plus keys and overhead)."""
    from pybroker_core import records
    return records.build_batch(make_records(RECORD_COUNT, KIB))


class ValidateBatch:
    params = (["compiled", "crc32c"],)
    param_names = ["implementation"]

    def setup(self, name):
        self.buf = one_mib_batch()
        self.fn = make_validator(name)

    def time_validate_1mib(self, name):
        self.fn(self.buf)


class BuildBatch:
    params = (IMPLEMENTATIONS, list(CODECS))
    param_names = ["implementation", "codec"]
    timeout = 120

    def setup(self, name, codec):
        self.records = make_records()
        self.build = make_builder(name, CODECS[codec])

    def time_build_1000x1kib(self, name, codec):
        self.build(self.records)


class ParseBatch:
    params = (IMPLEMENTATIONS, list(CODECS))
    param_names = ["implementation", "codec"]
    timeout = 120

    def setup(self, name, codec):
        from pybroker_core import records
        self.buf = records.build_batch(make_records(), compression=CODECS[codec])
        self.parse = make_parser(name)

    def time_parse_1000x1kib(self, name, codec):
        self.parse(self.buf)
