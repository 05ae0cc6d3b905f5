"""Shared helpers for the storage tests: batch builders and log factories (disk or memory)."""
import os

from pybroker.codec import records
from pybroker.log import Log, LogConfig


def batch(n=3, *, ts=1_000, value=b"v", producer_id=-1, producer_epoch=-1, base_sequence=-1,
          size=None, timestamp_type=0, tag=0):
    """One uncompressed batch of n records with timestamps ts..ts+n-1. `size` pads values so the
    whole batch is about that many bytes."""
    pad = b""
    if size is not None:
        pad = b"x" * max(0, (size - 61) // n - 12)
    recs = [(b"k%d" % tag, value + b"-%d-%d" % (tag, i) + pad, [], ts + i) for i in range(n)]
    return bytearray(records.build_batch(recs, producer_id=producer_id, producer_epoch=producer_epoch,
                                         base_sequence=base_sequence, timestamp_type=timestamp_type))


def open_log(storage, tmp_path, config=None, name="t-0", **kwargs):
    path = None if storage == "memory" else os.path.join(str(tmp_path), name)
    topic, partition = name.rsplit("-", 1)
    return Log.open(path, topic, int(partition), config or LogConfig(), **kwargs)


def reopen(log, *, clean=True, **kwargs):
    """Close (clean) or drop (crash) a disk log and open its directory again."""
    if clean:
        log.close_sync()
    else:
        drop(log)
    kwargs.setdefault("log_start_offset", log.log_start_offset)     # as log-start-offset-checkpoint
    return Log.open(log.dir_path, log.topic, log.partition, log.config, had_clean_shutdown=clean,
                    recovery_point=log.recovery_point if clean else kwargs.pop("recovery_point", 0),
                    **kwargs)


def drop(log):
    """Release file handles without any shutdown work (what a crash leaves behind)."""
    for seg in log.segments:
        seg.offset_index.close_handler()
        seg.time_index.close_handler()
        seg.log.close()


def all_batches(log, start=None):
    """[(base_offset, last_offset, bytes)] of everything readable, walking the log with read()."""
    out = []
    offset = log.log_start_offset if start is None else start
    while offset < log.high_watermark:
        data = log.read(offset, 1 << 20).tobytes()
        if not data:
            break
        for b in records.iter_batches(data):
            if b.last_offset >= offset:
                out.append((b.base_offset, b.last_offset, bytes(b.raw)))
                offset = b.last_offset + 1
    return out
