"""Interop with other clients' record-batch codecs, for every codec (none/gzip/snappy/lz4/zstd):
batches written by aiokafka (its Cython and its pure-Python builder) and kafka-python decode with
ours, and ours decode with theirs; headers, null keys/values and producer fields included."""
import pytest

from aiokafka.record import _crecords as aiokafka_c
from aiokafka.record import default_records as aiokafka_records
from kafka.record import default_records as kafka_python_records
from pybroker.codec import records as R

CODECS = [0, 1, 2, 3, 4]
BASE_TS = 1_712_345_678_901
VALUE = b"interop value that compresses well " * 6

RECORDS = [
    (b"key-0", VALUE, [], BASE_TS),
    (None, VALUE + b"1", [("trace-id", b"abc"), ("null-header", None)], BASE_TS + 3),
    (b"key-2", None, [], BASE_TS + 1),                                  # tombstone
    (b"", b"", [("empty", b"")], BASE_TS + 7),
] + [(b"key-%d" % i, VALUE, [("h", b"%d" % i)], BASE_TS + i) for i in range(4, 40)]

PRODUCER = dict(producer_id=123456789, producer_epoch=7, base_sequence=42)


def _their_builders():
    yield pytest.param(aiokafka_records.DefaultRecordBatchBuilder, id="aiokafka")
    yield pytest.param(aiokafka_c.DefaultRecordBatchBuilder, id="aiokafka-cython")
    yield pytest.param(aiokafka_records._DefaultRecordBatchBuilderPy, id="aiokafka-py")
    yield pytest.param(kafka_python_records.DefaultRecordBatchBuilder, id="kafka-python")


def _their_readers():
    yield pytest.param(aiokafka_records.DefaultRecordBatch, id="aiokafka")
    yield pytest.param(aiokafka_records._DefaultRecordBatchPy, id="aiokafka-py")
    yield pytest.param(kafka_python_records.DefaultRecordBatch, id="kafka-python")


def build_with(builder_cls, codec, transactional=False):
    b = builder_cls(2, codec, transactional, PRODUCER["producer_id"], PRODUCER["producer_epoch"],
                    PRODUCER["base_sequence"], 10 ** 7)
    for offset, (key, value, headers, ts) in enumerate(RECORDS):
        b.append(offset, ts, key, value, headers)
    return bytes(b.build())


def ours(batch):
    return [(r.key, r.value, r.headers, r.timestamp) for r in batch.records()]


def theirs(batch):
    return [(r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp) for r in batch]


@pytest.mark.parametrize("builder", list(_their_builders()))
@pytest.mark.parametrize("codec", CODECS)
def test_their_batches_decode_with_ours(builder, codec):
    raw = build_with(builder, codec, transactional=True)
    b = R.RecordBatch(raw)
    b.validate()
    assert b.compression == codec                     # the values compress, so no fallback to none
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == tuple(PRODUCER.values())
    assert b.is_transactional and not b.is_control
    assert (b.records_count, b.base_timestamp, b.max_timestamp) == (len(RECORDS), BASE_TS, BASE_TS + 39)
    assert ours(b) == RECORDS
    assert [r.offset for r in b.records()] == list(range(len(RECORDS)))


@pytest.mark.parametrize("reader", list(_their_readers()))
@pytest.mark.parametrize("codec", CODECS)
def test_our_batches_decode_with_theirs(reader, codec):
    raw = R.build_batch(RECORDS, compression=codec, is_transactional=True, **PRODUCER)
    batch = reader(raw)
    assert batch.validate_crc()
    assert batch.compression_type == codec
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == tuple(PRODUCER.values())
    assert batch.is_transactional
    assert theirs(reader(raw)) == RECORDS
    assert [r.offset for r in reader(raw)] == list(range(len(RECORDS)))


@pytest.mark.parametrize("codec", CODECS)
def test_identical_bytes_to_aiokafka_when_uncompressed_or_deterministic(codec):
    """Same records + same header fields: ours equals aiokafka's bytes for none (both are the
    canonical layout); for compressed codecs the decoded records must still match."""
    ref = build_with(aiokafka_records.DefaultRecordBatchBuilder, codec)
    mine = R.build_batch(RECORDS, compression=codec, **PRODUCER)
    if codec == 0:
        assert mine == ref
    assert ours(R.RecordBatch(mine)) == ours(R.RecordBatch(ref))


def test_log_append_time_and_offsets_seen_by_kafka_python():
    buf = bytearray(R.build_batch(RECORDS, compression=1))
    R.assign_offsets(buf, 0, 1000, partition_leader_epoch=4, log_append_time=BASE_TS + 10_000)
    batch = kafka_python_records.DefaultRecordBatch(bytes(buf))
    assert batch.validate_crc() and batch.timestamp_type == 1
    assert batch.leader_epoch == 4 and batch.base_offset == 1000
    assert [(r.offset, r.timestamp) for r in batch] == [
        (1000 + i, BASE_TS + 10_000) for i in range(len(RECORDS))]


@pytest.mark.parametrize("control_type", [R.CONTROL_ABORT, R.CONTROL_COMMIT])
def test_control_batch_seen_by_kafka_python(control_type):
    raw = R.build_control_batch(control_type, producer_id=99, producer_epoch=1,
                                coordinator_epoch=5, base_offset=8, timestamp=BASE_TS)
    batch = kafka_python_records.DefaultRecordBatch(raw)
    assert batch.validate_crc() and batch.is_control_batch and batch.is_transactional
    (rec,) = list(batch)
    assert (rec.version, rec.type, rec.offset) == (0, control_type, 8)
