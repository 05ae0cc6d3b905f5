"""Compaction through real clients: a topic of 100,000 keys with updates, tombstones and keys
re-created after deletion. A consumer reading the whole topic again and again while the cleaner
works always ends with exactly the latest value of every live key, in offset order; afterwards a
full read returns each live key once with its latest value and no deleted key, and once the delete
horizon has passed the tombstones are gone too. `kill -9` in the middle of a clean (a separate
`pybroker serve`): after the restart the log verifies, nothing latest is lost, and cleaning
completes. Keyless records on a compacted topic are rejected with INVALID_RECORD."""
import os
import threading
import time

from lifecycle_helpers import (FAST, consume_all, create_topic, incremental, now_ms, produce, raw,
                               unique, wait_until)
from pybroker.codec import messages as m
from pybroker.codec.records import build_batch

KEYS = 100_000
BROKER = 4


def workload():
    """Records in order and the expected final view {key: value} (deleted keys absent)."""
    items = [(b"key-%06d" % i, b"v1-%06d-" % i + b"p" * 30) for i in range(KEYS)]
    items += [(b"key-%06d" % i, b"v2-%06d" % i) for i in range(0, KEYS, 3)]
    items += [(b"key-%06d" % i, None) for i in range(0, KEYS, 10)]
    items += [(b"key-%06d" % i, b"v3-%06d" % i) for i in range(0, KEYS, 20)]
    final = {}
    for k, v in items:
        final[k] = v
    return items, {k: v for k, v in final.items() if v is not None}


def view(records):
    """The consumer's materialized view of a read: latest value per key, tombstones delete."""
    out = {}
    for _, k, v in records:
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def roll_active_segment(bootstrap, topic):
    """segment.ms is 1 s: a later record rolls the segment, so every workload record becomes
    cleanable (the active segment never is)."""
    time.sleep(1.2)
    produce(bootstrap, topic, [(b"zz-roll", b"%d" % now_ms())])


def cleaned_up_to(cleaner, tp, offset):
    return cleaner.checkpoints.get(tp, -1) >= offset and not cleaner.is_cleaning(tp)


def test_100k_keys_compacted_while_consumers_read(broker, bootstrap):
    topic = unique("compact100k")
    create_topic(bootstrap, topic, config={"cleanup.policy": "compact", "segment.ms": "1000",
                                           "internal.segment.bytes": str(256 << 10),
                                           "delete.retention.ms": "0",
                                           "min.cleanable.dirty.ratio": "0.01"})
    # slow the cleaner down (a dynamic broker config) so that reads overlap its swaps
    assert incremental(bootstrap, BROKER, "", [("log.cleaner.io.max.bytes.per.second", 0,
                                                "1000000")]) == (0, None)
    items, final = workload()
    assert produce(bootstrap, topic, items, **{"linger.ms": 50, "compression.type": "lz4"}) == []
    logs = broker.broker.state.replicas.logs
    log = logs.get_log(topic, 0)
    size_before = log.size
    reads, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            before = list(log.segments)
            got = consume_all(bootstrap, topic)
            swapped = len(before) != len(log.segments) or any(
                a is not b for a, b in zip(before, log.segments))
            reads.append((got, swapped))
    t = threading.Thread(target=reader)
    try:
        roll_active_segment(bootstrap, topic)
        final[b"zz-roll"] = None
        t.start()
        end = log.active_segment.base_offset
        wait_until(lambda: cleaned_up_to(logs.cleaner, (topic, 0), end), timeout=120,
                   what="the cleaner to reach the active segment")
    finally:
        stop.set()
        t.join(60)
        incremental(bootstrap, BROKER, "", [("log.cleaner.io.max.bytes.per.second", 1, None)])
    assert reads and any(changed for _, changed in reads), "no read overlapped a swap"
    for got, _ in reads:
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets))
        seen = view(got)
        seen.pop(b"zz-roll", None)
        final.pop(b"zz-roll", None)
        assert seen == final, "a read during compaction lost or changed a latest value"
    got = consume_all(bootstrap, topic)
    assert len(got) <= KEYS + 1 < len(items) and log.size < size_before * 0.8   # one per key
    live = [(k, v) for _, k, v in got if k != b"zz-roll"]
    assert dict(live) == {k: v for k, v in view(got).items() if k != b"zz-roll"} | \
        {k: v for k, v in live if v is None}
    assert {k for k, v in live if v is not None} == set(final)
    assert len({k for k, _ in live}) == len(live), "a key appears twice after compaction"
    # tombstones carry a delete horizon now; the next round (new dirty data) removes them
    assert any(v is None for _, v in live)
    assert incremental(bootstrap, 2, topic, [("min.cleanable.dirty.ratio", 0, "0")]) == (0, None)
    produce(bootstrap, topic, [(b"zz-more", b"1")])
    roll_active_segment(bootstrap, topic)
    end = log.active_segment.base_offset
    wait_until(lambda: cleaned_up_to(logs.cleaner, (topic, 0), end), timeout=60,
               what="the second round")
    got = consume_all(bootstrap, topic)
    assert not [k for _, k, v in got if v is None and k != b"zz-roll"], "tombstones left"
    assert {k: v for _, k, v in got if not k.startswith(b"zz-")} == final


def test_keyless_records_on_a_compacted_topic_are_rejected(bootstrap):
    from confluent_kafka import KafkaError
    topic = unique("keyless")
    create_topic(bootstrap, topic, config={"cleanup.policy": "compact"})
    errors = produce(bootstrap, topic, [(None, b"no key")], **{"message.send.max.retries": 0})
    assert [e.code() for e in errors] == [KafkaError.INVALID_RECORD]
    batch = build_batch([(b"k", b"1", [], None), (None, b"2", [], None)])
    P = m.ProduceRequest
    resp = raw(bootstrap, 0, 9, P(acks=-1, timeout_ms=5000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.PartitionProduceData(index=0, records=batch)])]))
    pr = resp.responses[0].partition_responses[0]
    assert pr.error_code == 87 and [e.batch_index for e in pr.record_errors] == [1]
    assert "without key" in pr.error_message
    assert consume_all(bootstrap, topic) == []


def _workload_kill(bootstrap, topic):
    items, final = workload()
    assert produce(bootstrap, topic, items, **{"linger.ms": 50}) == []
    roll_active_segment(bootstrap, topic)
    return final


def test_kill_9_in_the_middle_of_a_clean_loses_nothing(serve):
    overrides = [f"{k}={v}" for k, v in FAST.items()]
    s = serve(overrides=overrides).start(extra=["log.cleaner.io.max.bytes.per.second=3000000"])
    topic = unique("kill9")
    create_topic(s.bootstrap, topic, config={"cleanup.policy": "compact", "segment.ms": "1000",
                                             "internal.segment.bytes": str(1 << 20),
                                             "min.cleanable.dirty.ratio": "0.01"})
    final = _workload_kill(s.bootstrap, topic)
    part = s.data_dir / f"{topic}-0"
    wait_until(lambda: any(n.endswith(".cleaned") for n in os.listdir(part)), timeout=60,
               interval=0.01, what="the cleaner to start writing a cleaned segment")
    s.kill9()
    leftovers = [n for n in os.listdir(part) if n.endswith((".cleaned", ".swap", ".deleted"))]
    assert leftovers, "killed after the clean finished: nothing was interrupted"
    s.start()                                            # unthrottled: clean to the end
    got = consume_all(s.bootstrap, topic)
    seen = {k: v for k, v in view(got).items() if not k.startswith(b"zz-")}
    assert seen == final
    recovered = s.err.read_text()                       # recovery removed or completed them
    assert all(f"deleted temporary file {n}" in recovered or
               f"completed interrupted swap of {n}" in recovered
               for n in leftovers if n.endswith((".cleaned", ".swap"))), recovered[-2000:]
    end = max(o for o, _, _ in got)
    wait_until(lambda: _checkpoint(s.data_dir, topic) >= end, timeout=60,
               what="cleaning to complete after the restart")
    got = consume_all(s.bootstrap, topic)
    assert {k: v for k, v in view(got).items() if not k.startswith(b"zz-")} == final
    assert s.stop() == 0
    assert not [n for n in os.listdir(part) if n.endswith((".cleaned", ".swap"))]
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "pybroker", "verify-log", str(s.data_dir)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]


def _checkpoint(data_dir, topic):
    path = data_dir / "cleaner-offset-checkpoint"
    if not path.exists():
        return -1
    for line in path.read_text().splitlines()[2:]:
        t, p, o = line.split()
        if t == topic:
            return int(o)
    return -1
