"""Idempotent producer state: duplicates, sequence order, epoch fencing, snapshots (byte layout,
CRC, round trip) and the rebuild after clean and unclean restarts."""
import os
import struct
import time

import crc32c as reference_crc
import pytest

from pybroker.log import InvalidProducerEpochError, LogConfig, OutOfOrderSequenceError
from pybroker.log.errors import CorruptSnapshotError
from pybroker.log.producer_state import (
    BatchMetadata, ProducerStateEntry, decode_snapshot, encode_snapshot, increment_sequence)
from log_helpers import batch, open_log, reopen

PID = 4000


def pbatch(seq, n=2, epoch=0, pid=PID, tag=0):
    # recent timestamps: producers idle for producer.id.expiration.ms (1 day) are dropped on load
    return batch(n, producer_id=pid, producer_epoch=epoch, base_sequence=seq, tag=tag,
                 ts=int(time.time() * 1000))


def test_duplicate_returns_the_original_offsets(storage, tmp_path):
    log = open_log(storage, tmp_path)
    log.append_as_leader(batch(5))
    first = log.append_as_leader(pbatch(0))
    log.append_as_leader(pbatch(2))
    end = log.log_end_offset
    again = log.append_as_leader(pbatch(0))
    assert again.duplicate and (again.first_offset, again.last_offset) == (first.first_offset, first.last_offset)
    assert log.log_end_offset == end                        # nothing appended


def test_duplicates_found_among_the_last_five_batches_only(storage, tmp_path):
    log = open_log(storage, tmp_path)
    infos = [log.append_as_leader(pbatch(2 * i, tag=i)) for i in range(6)]
    dup = log.append_as_leader(pbatch(2, tag=1))           # 2nd batch: still among the last five
    assert dup.duplicate and dup.first_offset == infos[1].first_offset
    with pytest.raises(OutOfOrderSequenceError) as err:
        log.append_as_leader(pbatch(0, tag=0))             # 1st batch: evicted, so out of order
    assert err.value.error_code == 45


def test_out_of_order_sequence_is_rejected_and_nothing_appended(storage, tmp_path):
    log = open_log(storage, tmp_path)
    log.append_as_leader(pbatch(0))
    end = log.log_end_offset
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(pbatch(5))
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(pbatch(1))                    # overlaps the last batch's range
    assert log.log_end_offset == end and log.stable_offset == end
    assert log.append_as_leader(pbatch(2)).first_offset == end


def test_epoch_fencing_and_new_epoch_rules(storage, tmp_path):
    log = open_log(storage, tmp_path)
    log.append_as_leader(pbatch(0, epoch=3))
    with pytest.raises(InvalidProducerEpochError) as err:
        log.append_as_leader(pbatch(2, epoch=2))
    assert err.value.error_code == 47
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(pbatch(7, epoch=4))           # a new epoch must start at sequence 0
    log.append_as_leader(pbatch(0, epoch=4))
    with pytest.raises(InvalidProducerEpochError):
        log.append_as_leader(pbatch(2, epoch=3))           # the old epoch is now fenced
    assert log.producer_state.last_entry(PID).producer_epoch == 4


def test_unknown_producer_is_accepted_with_any_sequence(storage, tmp_path):
    # Kafka >= 2.5 (KIP-360): no UNKNOWN_PRODUCER_ID on produce; the first batch sets the state
    log = open_log(storage, tmp_path)
    info = log.append_as_leader(pbatch(42))
    assert not info.duplicate and log.producer_state.last_entry(PID).last_seq == 43
    assert log.append_as_leader(pbatch(42)).duplicate
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(pbatch(50))                   # known now: sequences must follow
    assert log.append_as_leader(pbatch(44)).first_offset == info.last_offset + 1


def test_sequence_wraps_at_int32_max(storage, tmp_path):
    log = open_log(storage, tmp_path)
    log.append_as_leader(pbatch(2**31 - 2, n=1))
    log.append_as_leader(pbatch(2**31 - 1, n=1))
    log.append_as_leader(pbatch(0, n=1))
    assert log.producer_state.last_entry(PID).last_seq == 0
    assert increment_sequence(2**31 - 1, 1) == 0 and increment_sequence(2**31 - 2, 3) == 1


def test_snapshot_bytes_match_kafka_layout():
    entries = [
        ProducerStateEntry(7, 2, 5, 1_700_000_000_123, None, [BatchMetadata(41, 900, 9, 1_700_000_000_123)]),
        ProducerStateEntry(3, 0, -1, 55, 880, [BatchMetadata(4, 881, 2, 55)]),
    ]
    data = encode_snapshot(entries)
    body = struct.pack(">i", 2)
    body += struct.pack(">qhiqiqiq", 3, 0, 4, 881, 2, 55, -1, 880)
    body += struct.pack(">qhiqiqiq", 7, 2, 41, 900, 9, 1_700_000_000_123, 5, -1)
    assert data == struct.pack(">hI", 1, reference_crc.crc32c(body)) + body
    back = decode_snapshot(data)
    assert [(e.producer_id, e.producer_epoch, e.last_seq, e.first_seq, e.last_data_offset,
             e.coordinator_epoch, e.current_txn_first_offset) for e in back] == \
        [(3, 0, 4, 2, 881, -1, 880), (7, 2, 41, 32, 900, 5, None)]


def test_corrupt_snapshots_are_rejected():
    data = bytearray(encode_snapshot([ProducerStateEntry(1, 0, -1, 5, None, [BatchMetadata(1, 1, 1, 5)])]))
    for mutate in (lambda d: d.__setitem__(20, d[20] ^ 1),          # flipped bit: CRC
                   lambda d: d.__setitem__(1, 2),                   # version 2
                   lambda d: d.__delitem__(slice(-3, None))):       # truncated
        bad = bytearray(data)
        mutate(bad)
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(bytes(bad))


def test_state_survives_clean_restart_via_snapshot(tmp_path):
    log = open_log("disk", tmp_path, LogConfig(segment_bytes=300))
    infos = [log.append_as_leader(pbatch(2 * i, tag=i)) for i in range(6)]
    snaps = sorted(n for n in os.listdir(log.dir_path) if n.endswith(".snapshot"))
    assert snaps and all(int(n[:20]) in [s.base_offset for s in log.segments] for n in snaps)
    log = reopen(log, clean=True)
    assert f"{log.log_end_offset:020d}.snapshot" in os.listdir(log.dir_path)
    dup = log.append_as_leader(pbatch(10, tag=5))
    assert dup.duplicate and dup.first_offset == infos[5].first_offset
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(pbatch(20))
    assert log.append_as_leader(pbatch(12)).first_offset == infos[5].last_offset + 1


def test_state_rebuilt_by_replay_after_crash_and_bad_snapshot(tmp_path):
    log = open_log("disk", tmp_path, LogConfig(segment_bytes=300))
    infos = [log.append_as_leader(pbatch(2 * i, tag=i)) for i in range(6)]
    newest = max(log.producer_state.snapshots)
    with open(log.producer_state.snapshots[newest], "r+b") as f:
        f.seek(12)
        f.write(b"\xff")                                   # break the newest snapshot's CRC
    log = reopen(log, clean=False)
    assert newest not in log.producer_state.snapshots or log.log_end_offset == newest
    entry = log.producer_state.last_entry(PID)
    assert entry.last_seq == 11 and entry.last_data_offset == infos[5].last_offset
    dup = log.append_as_leader(pbatch(8, tag=4))
    assert dup.duplicate and dup.first_offset == infos[4].first_offset


def test_expired_producers_are_dropped_on_load(tmp_path):
    log = open_log("disk", tmp_path)
    log.append_as_leader(batch(2, producer_id=PID, producer_epoch=0, base_sequence=0, ts=1000))
    log = reopen(log, clean=True)
    assert log.producer_state.last_entry(PID) is None      # last write in 1970: expired


def test_transaction_markers_open_and_close_the_last_stable_offset(storage, tmp_path):
    from pybroker.codec import records
    from pybroker.log import AppendOrigin
    log = open_log(storage, tmp_path)
    log.append_as_leader(batch(2))
    fixed = bytearray(records.build_batch([(None, b"t%d" % i, [], int(time.time() * 1000)) for i in range(2)],
                                          producer_id=PID, producer_epoch=0, base_sequence=0,
                                          is_transactional=True))
    log.append_as_leader(fixed)
    log.append_as_leader(batch(1))
    assert log.producer_state.first_unstable_offset() == 2
    assert log.last_stable_offset == 2 < log.high_watermark == 5
    marker = bytearray(records.build_control_batch(records.CONTROL_COMMIT, producer_id=PID, producer_epoch=0))
    log.append_as_leader(marker, origin=AppendOrigin.COORDINATOR)
    assert log.producer_state.first_unstable_offset() is None
    assert log.last_stable_offset == log.high_watermark == 6
