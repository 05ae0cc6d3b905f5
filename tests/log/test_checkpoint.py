"""Kafka's checkpoint and metadata text formats, byte for byte, and their crash-safe writes."""
import base64
import json
import os
import uuid

import pytest

from pybroker.log.checkpoint import (
    CleanShutdownFile, LeaderEpochCheckpointFile, MalformedCheckpointError, MetaProperties,
    OffsetCheckpointFile, PartitionMetadataFile, decode_properties, random_uuid, uuid_from_str,
    uuid_to_str, write_atomic)
from pybroker.log.epoch_cache import LeaderEpochFileCache


def test_offset_checkpoint_bytes(tmp_path):
    f = OffsetCheckpointFile(str(tmp_path / "recovery-point-offset-checkpoint"))
    f.write({("orders", 1): 42, ("orders", 0): 7, ("a.b-c_d", 12): 0})
    assert (tmp_path / "recovery-point-offset-checkpoint").read_bytes() == \
        b"0\n3\na.b-c_d 12 0\norders 0 7\norders 1 42\n"
    assert f.read() == {("orders", 1): 42, ("orders", 0): 7, ("a.b-c_d", 12): 0}
    OffsetCheckpointFile(str(tmp_path / "empty")).write({})
    assert (tmp_path / "empty").read_bytes() == b"0\n0\n"
    assert OffsetCheckpointFile(str(tmp_path / "missing")).read() == {}


@pytest.mark.parametrize("text", [b"1\n0\n", b"0\n2\nt 0 1\n", b"0\nx\n", b"0\n1\nt 0\n",
                                  b"0\n1\nt zero 1\n", b"", b"\xff\xfe"])
def test_malformed_checkpoints_raise_typed_errors(tmp_path, text):
    p = tmp_path / "cp"
    p.write_bytes(text)
    with pytest.raises(MalformedCheckpointError) as err:
        OffsetCheckpointFile(str(p)).read()
    assert err.value.error_code == 56


def test_leader_epoch_checkpoint_bytes(tmp_path):
    path = str(tmp_path / "leader-epoch-checkpoint")
    cache = LeaderEpochFileCache(LeaderEpochCheckpointFile(path))
    cache.assign(0, 0)
    cache.assign(3, 120)
    cache.assign(4, 5000)
    cache.persist()
    assert open(path, "rb").read() == b"0\n3\n0 0\n3 120\n4 5000\n"
    assert LeaderEpochFileCache.load(LeaderEpochCheckpointFile(path)).entries == [(0, 0), (3, 120), (4, 5000)]


def test_epoch_cache_assign_and_truncation_rules():
    cache = LeaderEpochFileCache()
    assert cache.assign(1, 10) and not cache.assign(1, 20)      # same epoch, later offset: no-op
    assert cache.assign(2, 30) and cache.assign(5, 50)
    assert cache.assign(3, 40)                                   # drops epoch 5 (conflicting)
    assert cache.entries == [(1, 10), (2, 30), (3, 40)]
    assert cache.epoch_for_offset(35) == 2 and cache.epoch_for_offset(5) is None
    cache.truncate_from_end(40)
    assert cache.entries == [(1, 10), (2, 30)]
    cache.truncate_from_start(35)
    assert cache.entries == [(2, 35)]


def test_partition_metadata_bytes_and_kafka_uuid_strings(tmp_path):
    raw = uuid.UUID("d4d7c2c6-2ef5-4a34-9c0e-5f8b2a1c3e7f").bytes
    topic_id = uuid_to_str(raw)
    assert topic_id == base64.urlsafe_b64encode(raw).decode()[:22] and len(topic_id) == 22
    assert uuid_from_str(topic_id) == raw
    f = PartitionMetadataFile(str(tmp_path / "partition.metadata"))
    f.write(topic_id)
    assert (tmp_path / "partition.metadata").read_bytes() == f"version: 0\ntopic_id: {topic_id}".encode()
    assert f.read() == topic_id
    for _ in range(50):
        rid = random_uuid()
        assert len(rid) == 22 and not rid.startswith("-") and len(uuid_from_str(rid)) == 16


def test_clean_shutdown_file_matches_kafka(tmp_path):
    f = CleanShutdownFile(str(tmp_path))
    f.write(17)
    data = (tmp_path / ".kafka_cleanshutdown").read_bytes()
    assert data == b'{"broker_epoch":"17","version":"0"}'       # Jackson over Java's HashMap
    assert json.loads(data) == {"broker_epoch": "17", "version": "0"} and f.read() == 17
    f.delete()
    assert not f.exists() and f.read() is None


def test_meta_properties_round_trip(tmp_path):
    m = MetaProperties(str(tmp_path))
    m.write({"version": "1", "node.id": "3", "cluster.id": "abc", "directory.id": "xyz"})
    text = (tmp_path / "meta.properties").read_text()
    lines = text.splitlines()
    assert lines[0] == "#" and lines[1].startswith("#")
    assert lines[2:] == ["node.id=3", "directory.id=xyz", "version=1", "cluster.id=abc"]
    assert m.read() == {"version": "1", "node.id": "3", "cluster.id": "abc", "directory.id": "xyz"}
    assert decode_properties("# c\n! c\nkey : value\n\na=b=c\n") == {"key": "value", "a": "b=c"}


def test_write_atomic_never_leaves_a_half_file(tmp_path, monkeypatch):
    path = str(tmp_path / "cp")
    write_atomic(path, b"old contents\n")

    def failing_fsync(fd):
        raise OSError(5, "simulated I/O error")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_atomic(path, b"new contents that never become visible\n")
    monkeypatch.undo()
    assert open(path, "rb").read() == b"old contents\n"
