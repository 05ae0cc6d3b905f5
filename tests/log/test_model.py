"""Random operation sequences against a plain list-of-batches model: append (random sizes and
counts), read at random offsets, truncate, move the log start offset, retention, and (on disk)
clean or crashed restarts. Every read must agree with the model, byte for byte."""
import random

import pytest

from pybroker.codec import records
from pybroker.log import LogConfig, OffsetOutOfRangeError
from log_helpers import all_batches, batch, open_log, reopen

CFG = LogConfig(segment_bytes=1500, index_interval_bytes=200, segment_index_bytes=4096)


def _read_matches(log, model, offset):
    if offset < log.log_start_offset or offset > log.log_end_offset:
        with pytest.raises(OffsetOutOfRangeError):
            log.read(offset, 500)
        return
    data = log.read(offset, 500).tobytes()
    holding = [b for b in model if b[1] >= offset]
    if not holding:
        assert data == b""
        return
    first = records.RecordBatch(data)
    assert (first.base_offset, first.last_offset) == holding[0][:2]
    assert bytes(first.raw)[17:] == holding[0][2][17:]


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_agree_with_model(storage, tmp_path, seed):
    rng = random.Random(seed)
    log = open_log(storage, tmp_path, CFG)
    model = []                                   # (base, last, bytes) of every live batch
    tag = 0
    counts = dict.fromkeys(("append", "read", "truncate", "start", "restart"), 0)
    for step in range(160):
        op = rng.random()
        kind = ("append" if op < 0.6 else "read" if op < 0.8 else "truncate" if op < 0.86
                else "start" if op < 0.9 else "restart")
        counts[kind] += 1
        if op < 0.6:
            n = rng.randint(1, 5)
            b = batch(n, size=rng.choice((70, 150, 400, 900)), tag=tag, ts=1000 + step)
            tag += 1
            info = log.append_as_leader(b, leader_epoch=step // 40)
            records.assign_offsets(b, 0, info.first_offset, step // 40)
            model.append((info.first_offset, info.last_offset, bytes(b)))
        elif op < 0.8 and model:
            _read_matches(log, model, rng.randint(max(0, log.log_start_offset - 2), log.log_end_offset + 2))
        elif op < 0.86 and model:
            keep = rng.randint(0, len(model))
            target = model[keep][0] if keep < len(model) else log.log_end_offset
            if target >= log.log_start_offset:
                log.truncate_to_drained(target)
                model = model[:keep]
        elif op < 0.9 and model:
            target = rng.choice(model)[0]
            if log.maybe_increment_log_start_offset(max(target, log.log_start_offset)):
                log.delete_old_segments()
            model = [b for b in model if b[1] >= log.log_start_offset]
        elif storage == "disk" and op < 0.95:
            log = reopen(log, clean=rng.random() < 0.5)
        assert log.log_end_offset == (model[-1][1] + 1 if model else log.log_end_offset)
    live = [b for b in model if b[1] >= log.log_start_offset]
    got = all_batches(log)
    assert [(b, l, raw[17:]) for b, l, raw in got] == [(b, l, raw[17:]) for b, l, raw in live]
    if storage == "disk":
        log = reopen(log, clean=False)
        assert [raw[17:] for _, _, raw in all_batches(log)] == [raw[17:] for _, _, raw in live]
    assert counts["append"] > 50 and counts["read"] > 10 and counts["truncate"] > 0
