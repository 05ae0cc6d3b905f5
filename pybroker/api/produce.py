"""Produce (key 0), versions 0-13 advertised (v0-2 are rejected, as Kafka 4 does: advertising
min 0 lets librdkafka < 2.11 enable compression); v13 addresses topics by id.

Per partition, before anything is appended (LogValidator's checks for client batches):
exactly one magic-2 batch filling the records field (else INVALID_RECORD 87, truncated or bad CRC
→ CORRUPT_MESSAGE 2), batch size ≤ the topic's max.message.bytes (MESSAGE_TOO_LARGE 10), no control
batches from clients (87), record count = last offset delta + 1 (87), zstd only from v7
(UNSUPPORTED_COMPRESSION_TYPE 76), producer id ≥ 0 ⇒ base sequence ≥ 0 (87). Idempotent
producers are checked against the partition's producer state (duplicates answered with the
original offsets; OUT_OF_ORDER_SEQUENCE_NUMBER 45, INVALID_PRODUCER_EPOCH 47, UNKNOWN_PRODUCER_ID
59). Unknown topic/partition → UNKNOWN_TOPIC_OR_PARTITION 3 (UNKNOWN_TOPIC_ID 100 by id).
acks must be -1, 0 or 1 (INVALID_REQUIRED_ACKS 21). With acks=0 there is no response, and any
error closes the connection (Kafka's signal to such producers). On one node acks=-1 equals acks=1.
Not yet: transactional batches (INVALID_TXN_STATE 48 until the transactions issue).
Topic policies (pybroker/log/validator.py): keys required on compacted topics (INVALID_RECORD),
per-record CreateTime bounds message.timestamp.before/after.max.ms (INVALID_TIMESTAMP, with
record_errors), max.decompressed.message.bytes, broker-side compression.type (recompression), and
min.insync.replicas > 1 with acks=all → NOT_ENOUGH_REPLICAS 19 (one replica).
"""
import asyncio
import time

from pybroker.codec.errors import CorruptRecordError, DecodeError, InvalidRecordError, \
    UnsupportedCompressionError
from pybroker.codec.messages import ProduceResponse
from pybroker.codec.records import RecordBatch
from pybroker.log import validator as log_validator
from pybroker.network.connection import CloseConnection
from pybroker.replica.errors import PartitionError

API_KEY = 0
VERSIONS = (0, 13)
R = ProduceResponse
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
NOT_ENOUGH_REPLICAS = 19
INVALID_REQUIRED_ACKS = 21
INVALID_TIMESTAMP = 32
UNSUPPORTED_VERSION = 35
INVALID_TXN_STATE = 48
UNSUPPORTED_COMPRESSION_TYPE = 76
UNKNOWN_TOPIC_ID = 100
INVALID_RECORD = 87
ZSTD = 4


class _Reject(Exception):
    def __init__(self, code, message=None, record_errors=()):
        self.code, self.message, self.record_errors = code, message, record_errors


def handle(ctx, req):
    if ctx.api_version < 3:
        raise CloseConnection("Produce v0-2 are not supported (removed in Kafka 4.0)")
    acks = req.acks
    pending = []  # (topic response, partition response, awaitable)
    topics = []
    for td in req.topic_data:
        tresp = R.TopicProduceResponse(name=td.name, topic_id=td.topic_id, partition_responses=[])
        topics.append(tresp)
        for pd in td.partition_data:
            presp = R.PartitionProduceResponse(index=pd.index, error_code=0, base_offset=-1,
                                               log_append_time_ms=-1, log_start_offset=-1,
                                               record_errors=[])
            tresp.partition_responses.append(presp)
            if acks not in (-1, 0, 1):
                presp.error_code = INVALID_REQUIRED_ACKS
                continue
            try:
                part = _partition(ctx, td, pd)
                batch = _validate(ctx, part, req, pd.records)
                records = _apply_policies(part, batch, pd.records, acks)
                result = part.append_records(records, batch)
            except _Reject as rej:
                presp.error_code, presp.error_message = rej.code, rej.message
                presp.record_errors = [R.BatchIndexAndErrorMessage(
                    batch_index=i, batch_index_error_message=msg) for i, msg in rej.record_errors]
                continue
            except PartitionError as exc:
                presp.error_code, presp.error_message = exc.code, exc.message
                continue
            if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                pending.append((presp, result))
            else:
                _fill(presp, result)
    resp = R(responses=topics, throttle_time_ms=0)
    if pending:
        return _complete(resp, pending, acks)
    return _answer(resp, acks)


def _answer(resp, acks):
    if acks != 0:
        return resp
    for t in resp.responses:
        for p in t.partition_responses:
            if p.error_code:
                raise CloseConnection(f"acks=0 produce failed with error {p.error_code}")
    return None


async def _complete(resp, pending, acks):
    for presp, aw in pending:
        try:
            _fill(presp, await aw)
        except PartitionError as exc:
            presp.error_code, presp.error_message = exc.code, exc.message
    return _answer(resp, acks)


def _fill(presp, result):
    presp.base_offset = result.base_offset
    presp.log_append_time_ms = result.log_append_time
    presp.log_start_offset = result.log_start_offset


def _partition(ctx, td, pd):
    replicas = ctx.state.replicas
    if ctx.api_version >= 13:
        info = ctx.state.metadata.by_id.get(td.topic_id)
        if info is None:
            raise _Reject(UNKNOWN_TOPIC_ID)
        name = info.name
    else:
        name = td.name
    part = replicas.partition(name, pd.index)
    if part is None:
        raise _Reject(UNKNOWN_TOPIC_OR_PARTITION)
    return part


def _validate(ctx, part, req, records):
    if records is None or len(records) == 0:
        raise _Reject(INVALID_RECORD, "Produce requests must contain exactly one record batch")
    try:
        batch = RecordBatch(records, 0)
    except DecodeError as exc:
        raise _Reject(CORRUPT_MESSAGE, str(exc)) from None
    if batch.magic != 2:
        raise _Reject(INVALID_RECORD, "Produce requests with version 3 are only allowed to contain "
                                      "record batches with magic version 2")
    if batch.size != len(records):
        code = INVALID_RECORD if batch.size < len(records) else CORRUPT_MESSAGE
        raise _Reject(code, "Produce requests with version 3 are only allowed to contain exactly one "
                            "record batch")
    if batch.size > part.max_message_bytes:
        raise _Reject(MESSAGE_TOO_LARGE, f"The batch of {batch.size} bytes exceeds max.message.bytes "
                                         f"{part.max_message_bytes}")
    try:
        batch.validate()
    except CorruptRecordError as exc:
        raise _Reject(CORRUPT_MESSAGE, str(exc)) from None
    except UnsupportedCompressionError as exc:
        raise _Reject(UNSUPPORTED_COMPRESSION_TYPE, str(exc)) from None
    except InvalidRecordError as exc:
        raise _Reject(INVALID_RECORD, str(exc)) from None
    if batch.is_control:
        raise _Reject(INVALID_RECORD, "Clients are not allowed to write control records")
    if batch.compression == ZSTD and ctx.api_version < 7:
        raise _Reject(UNSUPPORTED_COMPRESSION_TYPE, "zstd requires Produce v7 or later")
    if batch.producer_id >= 0 and batch.base_sequence < 0:
        raise _Reject(INVALID_RECORD, "Invalid sequence number for a batch with a producer id")
    if batch.is_transactional or req.transactional_id is not None:
        raise _Reject(INVALID_TXN_STATE, "Transactions are not supported by this broker yet")
    return batch


def _apply_policies(part, batch, records, acks):
    """The topic's policies (pybroker/log/validator.py: keys on compacted topics, timestamp
    bounds, record size, broker-side compression) and min.insync.replicas for acks=all.
    Returns the bytes to append."""
    config = part.log.config
    if acks == -1 and config.min_insync_replicas > 1:
        raise _Reject(NOT_ENOUGH_REPLICAS, f"The size of the current ISR [1] is insufficient to "
                                           f"satisfy the min.isr requirement of "
                                           f"{config.min_insync_replicas} for partition "
                                           f"{part.topic}-{part.index}")
    try:
        return log_validator.validate_batch(config, batch, records, int(time.time() * 1000),
                                            f"{part.topic}-{part.index}")
    except log_validator.RecordPolicyError as exc:
        raise _Reject(exc.code, exc.message, exc.record_errors) from None
