"""Record batches (magic v2): view, validate, assign offsets, iterate, build. Facade over
pybroker_core.records (compiled) or pybroker/codec/_pure/records.py (twin).

Contract (both implementations provide exactly these names):

  RecordBatch(buf, pos=0)            view of the batch starting at buf[pos]; header fields only,
                                     records are not decoded. Raises CorruptRecordError when the
                                     61-byte header or the declared length does not fit in buf.
    .base_offset .batch_length .size (12 + batch_length) .partition_leader_epoch .magic .crc
    .attributes .compression (0-4) .timestamp_type (0 create, 1 log-append) .is_transactional
    .is_control .has_delete_horizon .last_offset_delta .base_timestamp .max_timestamp
    .producer_id .producer_epoch .base_sequence .records_count .last_offset .next_offset
    .validate()                      length, magic, CRC-32C over attributes..end, count vs
                                     last_offset_delta, attribute bits; CorruptRecordError /
                                     InvalidRecordError / UnsupportedCompressionError
    .compute_crc() -> int
    .records() -> iterator[Record]   decompresses when needed (bounded), yields Record
    .raw -> memoryview               the batch's bytes (zero copy)
  Record: .offset .timestamp .key .value (bytes or None) .headers (list of (str, bytes|None))
          .attributes .offset_delta .timestamp_delta
  iter_batches(buf, pos=0, end=None) -> iterator[RecordBatch]; stops before a partial trailing
                                     batch (check `.next_position`-style via RecordBatch.size)
  assign_offsets(buf, pos, base_offset, partition_leader_epoch=-1, log_append_time=None)
                                     in place on a writable buffer; re-CRC only with
                                     log_append_time (sets MaxTimestamp and attribute bit 3)
  build_batch(records, *, base_offset=0, compression=0, timestamp_type=0, producer_id=-1,
              producer_epoch=-1, base_sequence=-1, is_transactional=False,
              partition_leader_epoch=-1, base_timestamp=None) -> bytes
                                     records: iterable of (key, value, headers, timestamp)
  build_control_batch(control_type, *, producer_id, producer_epoch, coordinator_epoch=0,
                      base_offset=0, timestamp=None, partition_leader_epoch=-1) -> bytes
  CONTROL_ABORT = 0, CONTROL_COMMIT = 1; COMPRESSION_NONE/GZIP/SNAPPY/LZ4/ZSTD = 0..4
"""
from pybroker import _impl

_mod = _impl.load("records")
globals().update({k: getattr(_mod, k) for k in getattr(_mod, "__all__", ())})
