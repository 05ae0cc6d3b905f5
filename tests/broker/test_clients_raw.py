"""Client behaviour at the protocol level, with our codec over raw sockets: fetch long poll, many
topics and partitions per Produce, the idempotent-producer rules (duplicates, gaps, fenced epochs),
topic deletion followed at once by re-creation (pipelined on one connection), and a parked write
holding up its own partition only."""
from __future__ import annotations

import threading
import time

from broker_conftest import (create_topic, fetch_records, list_offsets, log_end_offset, now_ms,
                             unique, wait_until)
from pybroker.codec import messages as m
from pybroker.codec.protocol import decode_response
from pybroker.codec.records import build_batch, iter_batches
from rawclient import RawClient

PR = m.ProduceRequest
NONE, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE = 0, 3, 5
OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH = 45, 47


def batch(values, **kw):
    return build_batch([(b"k%d" % i, v, [], now_ms()) for i, v in enumerate(values)], **kw)


def produce_request(parts, acks=-1):
    """parts: {topic: {partition: batch bytes}}"""
    return PR(acks=acks, timeout_ms=10000, topic_data=[
        PR.TopicProduceData(name=t, partition_data=[PR.PartitionProduceData(index=p, records=b)
                                                    for p, b in ps.items()])
        for t, ps in parts.items()])


def produce_one(client, topic, partition, records, version=9):
    resp = client.request(0, version, produce_request({topic: {partition: records}}))
    return resp.responses[0].partition_responses[0]


def fetch_request(topic, offset, max_wait_ms, min_bytes=1):
    F = m.FetchRequest
    return F(max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=1 << 20, topics=[
        F.FetchTopic(topic=topic, partitions=[F.FetchPartition(
            partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])])


def raw_fetch(bootstrap, topic, offset, max_wait_ms, min_bytes=1):
    with RawClient(bootstrap) as c:
        t0 = time.monotonic()
        resp = c.request(1, 12, fetch_request(topic, offset, max_wait_ms, min_bytes))
        return time.monotonic() - t0, resp.responses[0].partitions[0]


# -- fetch long poll ------------------------------------------------------------------------------

def test_fetch_long_poll_waits_max_wait_when_nothing_arrives(bootstrap, topic):
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"first"])).error_code == NONE
    elapsed, pd = raw_fetch(bootstrap, topic, 1, max_wait_ms=600)
    assert pd.error_code == 0 and not pd.records and pd.high_watermark == 1
    assert 0.55 <= elapsed < 3.0, elapsed


def test_fetch_long_poll_answers_when_a_message_arrives(bootstrap, topic):
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"first"])).error_code == NONE

    def late():
        with RawClient(bootstrap) as c:
            produce_one(c, topic, 0, batch([b"later"]))
    timer = threading.Timer(0.5, late)
    timer.start()
    try:
        elapsed, pd = raw_fetch(bootstrap, topic, 1, max_wait_ms=8000)
    finally:
        timer.join(10)
    assert pd.error_code == 0 and pd.high_watermark == 2
    recs = [(r.offset, r.value) for b in iter_batches(bytes(pd.records or b""))
            for r in b.records()]
    assert recs == [(1, b"later")]  # the long-poll response itself carries the record
    assert 0.4 <= elapsed < 5.0, elapsed  # woken by the append, long before max_wait


def test_fetch_long_poll_woken_by_an_append_reads_each_partition_once(bootstrap, topic, broker):
    # the read that finds the fetch satisfied is the one answered: one read when the request
    # arrives, one after the wake-up (a third, repeated read doubled the cost over many partitions)
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"first"])).error_code == NONE
    part = broker.broker.state.replicas.partition(topic, 0)
    reads = []

    def counted(*args, **kwargs):
        reads.append(args[0])
        return type(part).read(part, *args, **kwargs)
    part.read = counted
    try:
        def late():
            with RawClient(bootstrap) as c:
                produce_one(c, topic, 0, batch([b"later"]))
        timer = threading.Timer(0.3, late)
        timer.start()
        elapsed, pd = raw_fetch(bootstrap, topic, 1, max_wait_ms=8000)
        timer.join(10)
    finally:
        del part.read
    assert [r.value for b in iter_batches(bytes(pd.records)) for r in b.records()] == [b"later"]
    assert elapsed < 5.0 and reads == [1, 1], reads


def test_fetch_min_bytes_waits_for_enough_data(bootstrap, topic):
    create_topic(bootstrap, topic)
    small = batch([b"x"])
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, small).error_code == NONE
    # min_bytes above one batch: the fetch waits out max_wait and then returns what there is
    elapsed, pd = raw_fetch(bootstrap, topic, 0, max_wait_ms=500, min_bytes=len(small) * 3)
    assert 0.45 <= elapsed < 3.0 and len(pd.records) == len(small)


# -- produce ---------------------------------------------------------------------------------------

def test_produce_many_topics_and_partitions_with_per_partition_errors(bootstrap):
    a, b, missing = unique("multi-a"), unique("multi-b"), unique("multi-missing")
    create_topic(bootstrap, a, partitions=3)
    create_topic(bootstrap, b, partitions=1)
    parts = {a: {0: batch([b"a0"]), 2: batch([b"a2", b"a2'"]), 7: batch([b"nope"])},
             b: {0: batch([b"b0"] * 3)}, missing: {0: batch([b"x"])}}
    with RawClient(bootstrap) as c:
        resp = c.request(0, 9, produce_request(parts))
    codes = {(t.name, p.index): (p.error_code, p.base_offset)
             for t in resp.responses for p in t.partition_responses}
    assert codes == {(a, 0): (NONE, 0), (a, 2): (NONE, 0), (a, 7): (UNKNOWN_TOPIC_OR_PARTITION, -1),
                     (b, 0): (NONE, 0), (missing, 0): (UNKNOWN_TOPIC_OR_PARTITION, -1)}
    assert [g.value for g in fetch_records(bootstrap, a, 2)] == [b"a2", b"a2'"]
    assert [g.value for g in fetch_records(bootstrap, b, 0)] == [b"b0"] * 3
    assert log_end_offset(bootstrap, a, 1) == 0


def test_produce_acks_zero_gets_no_response(bootstrap, topic):
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        c.send(0, 9, produce_request({topic: {0: batch([b"fire", b"forget"])}}, acks=0))
        # the next request's response is the first frame back: nothing was sent for acks=0
        resp = c.request(18, 3, m.ApiVersionsRequest(client_software_name="t",
                                                     client_software_version="1"))
        assert resp.error_code == 0
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == [b"fire", b"forget"]


# -- idempotent producer ---------------------------------------------------------------------------

def init_producer_id(client, producer_id=-1, epoch=-1):
    resp = client.request(22, 4, m.InitProducerIdRequest(
        transactional_id=None, transaction_timeout_ms=60000, producer_id=producer_id,
        producer_epoch=epoch))
    assert resp.error_code == 0
    return resp.producer_id, resp.producer_epoch


def test_idempotent_duplicates_gaps_and_fencing(bootstrap, topic):
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        pid, epoch = init_producer_id(c)
        assert pid >= 0 and epoch == 0
        other, _ = init_producer_id(c)
        assert other != pid
        first = batch([b"v%d" % i for i in range(5)], producer_id=pid, producer_epoch=0,
                      base_sequence=0)
        r = produce_one(c, topic, 0, first)
        assert (r.error_code, r.base_offset) == (NONE, 0)
        r = produce_one(c, topic, 0, first)  # a retry of the same batch: original offset, no append
        assert (r.error_code, r.base_offset) == (NONE, 0)
        assert log_end_offset(bootstrap, topic) == 5
        gap = batch([b"gap"], producer_id=pid, producer_epoch=0, base_sequence=9)
        assert produce_one(c, topic, 0, gap).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
        r = produce_one(c, topic, 0, batch([b"v5"], producer_id=pid, producer_epoch=0,
                                           base_sequence=5))
        assert (r.error_code, r.base_offset) == (NONE, 5)
        assert init_producer_id(c, pid, 0) == (pid, 1)  # epoch bump keeps the id
        r = produce_one(c, topic, 0, batch([b"new epoch"], producer_id=pid, producer_epoch=1,
                                           base_sequence=0))  # a new epoch restarts at 0
        assert (r.error_code, r.base_offset) == (NONE, 6)
        # once the partition has seen epoch 1, epoch 0 is fenced
        stale = batch([b"stale"], producer_id=pid, producer_epoch=0, base_sequence=6)
        assert produce_one(c, topic, 0, stale).error_code == INVALID_PRODUCER_EPOCH
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == \
        [b"v0", b"v1", b"v2", b"v3", b"v4", b"v5", b"new epoch"]


# -- delete, then create at once -------------------------------------------------------------------

def _pipeline(bootstrap, requests):
    """Send every (api_key, version, body) before reading any response; returns the responses."""
    from pybroker.codec.protocol import decode_response, encode_request
    with RawClient(bootstrap) as c:
        frames = b"".join(encode_request(k, v, i + 1, "pipeline", body)
                          for i, (k, v, body) in enumerate(requests))
        c.send_raw(frames)
        out = []
        for i, (k, v, _) in enumerate(requests):
            frame = c.recv_frame()
            assert frame, f"connection closed before response {i + 1}"
            header, body = decode_response(k, v, frame)
            assert header.correlation_id == i + 1
            out.append(body)
        return out


def _delete(name):
    return 20, 6, m.DeleteTopicsRequest(timeout_ms=10000, topics=[
        m.DeleteTopicsRequest.DeleteTopicState(name=name)])


def _create(name, partitions=1):
    T = m.CreateTopicsRequest
    return 19, 7, T(timeout_ms=10000, validate_only=False, topics=[T.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=1, assignments=[], configs=[])])


def test_delete_then_create_at_once_gives_a_fresh_topic(bootstrap, topic):
    create_topic(bootstrap, topic, partitions=2)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"old"] * 4)).error_code == NONE
    old_id = None
    with RawClient(bootstrap) as c:
        md = c.request(3, 12, m.MetadataRequest(topics=[m.MetadataRequest.MetadataRequestTopic(
            name=topic)], allow_auto_topic_creation=False))
        old_id = md.topics[0].topic_id
    deleted, created = _pipeline(bootstrap, [_delete(topic), _create(topic, 3)])
    assert deleted.responses[0].error_code == NONE
    res = created.topics[0]
    assert (res.error_code, res.num_partitions) == (NONE, 3), res.error_message
    assert res.topic_id != old_id
    assert [log_end_offset(bootstrap, topic, p) for p in range(3)] == [0, 0, 0]
    with RawClient(bootstrap) as c:
        r = produce_one(c, topic, 0, batch([b"new"]))
        assert (r.error_code, r.base_offset) == (NONE, 0)
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == [b"new"]


def test_delete_then_auto_create_by_metadata(bootstrap, topic):
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"old"] * 2)).error_code == NONE
    md_req = (3, 12, m.MetadataRequest(topics=[m.MetadataRequest.MetadataRequestTopic(name=topic)],
                                       allow_auto_topic_creation=True))
    deleted, md = _pipeline(bootstrap, [_delete(topic), md_req])
    assert deleted.responses[0].error_code == NONE
    assert md.topics[0].error_code in (NONE, LEADER_NOT_AVAILABLE)  # retriable while removing
    deadline = time.monotonic() + 10
    while True:
        _, md = _pipeline(bootstrap, [(18, 3, m.ApiVersionsRequest(
            client_software_name="t", client_software_version="1")), md_req])
        if md.topics[0].error_code == NONE:
            break
        assert time.monotonic() < deadline, md.topics[0].error_code
        time.sleep(0.05)
    assert list_offsets(bootstrap, topic, 0, -1)[0] == 0  # the old records are gone


# -- a client that disconnects right after sending -------------------------------------------------

def test_requests_sent_before_disconnect_are_still_handled(bootstrap, topic):
    """A long-poll Fetch keeps the connection busy; three acks=0 Produce requests queue behind it
    and the client closes at once. Kafka handles what it received in full; so must we."""
    from pybroker.codec.protocol import encode_request
    create_topic(bootstrap, topic)
    frames = [encode_request(1, 12, 1, "gone", fetch_request(topic, 0, max_wait_ms=300))]
    frames += [encode_request(0, 9, 2 + i, "gone", produce_request(
        {topic: {0: batch([b"m%d" % i, b"n%d" % i])}}, acks=0)) for i in range(3)]
    with RawClient(bootstrap) as c:
        c.send_raw(b"".join(frames))
    deadline = time.monotonic() + 5
    while log_end_offset(bootstrap, topic) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == \
        [b"m0", b"n0", b"m1", b"n1", b"m2", b"n2"]


# -- out of range, topic ids -----------------------------------------------------------------------

def test_fetch_out_of_range_and_client_reset(bootstrap, topic):
    create_topic(bootstrap, topic)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"a", b"b", b"c"])).error_code == NONE
    _, pd = raw_fetch(bootstrap, topic, 1000, max_wait_ms=0)
    # OFFSET_OUT_OF_RANGE, with the high watermark and log start offset
    assert (pd.error_code, pd.high_watermark, pd.log_start_offset) == (1, 3, 0)
    assert pd.records is not None and len(pd.records) == 0  # empty, not null (as Kafka)
    _, pd = raw_fetch(bootstrap, topic, 3, max_wait_ms=0)  # the log end itself is in range
    assert pd.error_code == NONE and not pd.records
    ck = __import__("pytest").importorskip("confluent_kafka")
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([ck.TopicPartition(topic, 0, 1000)])
        got, deadline = [], time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += [msg for msg in c.consume(3, 0.5) if msg.error() is None]
    finally:
        c.close()
    assert [(msg.offset(), msg.value()) for msg in got] == [(0, b"a"), (1, b"b"), (2, b"c")]


def test_topic_ids_for_metadata_fetch_and_delete(bootstrap, topic):
    create_topic(bootstrap, topic, partitions=2)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 1, batch([b"by id"])).error_code == NONE
        md = c.request(3, 12, m.MetadataRequest(topics=[m.MetadataRequest.MetadataRequestTopic(
            name=topic)], allow_auto_topic_creation=False))
        topic_id = md.topics[0].topic_id
        assert topic_id != bytes(16)
        md = c.request(3, 12, m.MetadataRequest(topics=[m.MetadataRequest.MetadataRequestTopic(
            topic_id=topic_id, name=None)], allow_auto_topic_creation=False))
        assert (md.topics[0].error_code, md.topics[0].name) == (NONE, topic)
        F = m.FetchRequest
        resp = c.request(1, 13, F(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
            F.FetchTopic(topic_id=topic_id, partitions=[F.FetchPartition(
                partition=1, fetch_offset=0, partition_max_bytes=1 << 20)])]))
        assert resp.responses[0].topic_id == topic_id
        pd = resp.responses[0].partitions[0]
        recs = [r.value for b in iter_batches(bytes(pd.records)) for r in b.records()]
        assert (pd.error_code, recs) == (NONE, [b"by id"])
        unknown = bytes(range(16))
        resp = c.request(1, 13, F(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
            F.FetchTopic(topic_id=unknown, partitions=[F.FetchPartition(
                partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])]))
        assert resp.responses[0].partitions[0].error_code == 100  # UNKNOWN_TOPIC_ID
        D = m.DeleteTopicsRequest
        resp = c.request(20, 6, D(timeout_ms=5000, topics=[D.DeleteTopicState(name=None,
                                                                             topic_id=topic_id)]))
        assert (resp.responses[0].error_code, resp.responses[0].name) == (NONE, topic)
        resp = c.request(20, 6, D(timeout_ms=5000, topics=[D.DeleteTopicState(name=None,
                                                                             topic_id=topic_id)]))
        assert resp.responses[0].error_code == 100
        md = c.request(3, 12, m.MetadataRequest(topics=[m.MetadataRequest.MetadataRequestTopic(
            name=topic)], allow_auto_topic_creation=False))
        assert md.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION


# -- fetch size limits (KIP-74) -------------------------------------------------------------------

def test_fetch_never_returns_a_partition_holding_only_a_cut_batch(bootstrap, topic):
    # three partitions, one ~10 KB batch each; the response limit fits one and a half of them.
    # The first partition's batch comes whole; the second's does not fit what is left, so it
    # comes back empty, as Kafka sends it (a cut first batch makes the Java consumer fail:
    # "Failed to make progress ... no complete records were found").
    create_topic(bootstrap, topic, partitions=3)
    value = b"v" * 10_000
    with RawClient(bootstrap) as c:
        for p in range(3):
            assert produce_one(c, topic, p, batch([value])).error_code == NONE
        F = m.FetchRequest

        def fetch(max_bytes):
            resp = c.request(1, 12, F(max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, topics=[
                F.FetchTopic(topic=topic, partitions=[
                    F.FetchPartition(partition=p, fetch_offset=0, partition_max_bytes=1 << 20)
                    for p in range(3)])]))
            return {pd.partition_index: bytes(pd.records or b"")
                    for pd in resp.responses[0].partitions}

        got = fetch(15_000)
        values = [[r.value for b in iter_batches(got[p]) for r in b.records()] for p in range(3)]
        assert values[0] == [value]
        assert got[1] == b"" and got[2] == b"", (len(got[1]), len(got[2]))
        # a first batch larger than the whole limit still comes whole (KIP-74), the rest empty
        got = fetch(100)
        assert [r.value for b in iter_batches(got[0]) for r in b.records()] == [value]
        assert got[1] == b"" and got[2] == b""
        # with room for all three, all three come whole
        got = fetch(1 << 20)
        assert all([r.value for b in iter_batches(got[p]) for r in b.records()] == [value]
                   for p in range(3))


def test_fetch_at_the_high_watermark_answers_like_any_other_read(bootstrap, topic, broker):
    # Partition.read answers a caught-up partition without the log's lookups; the answer must be
    # what the full read gives: no records, the partition's offsets, [] aborted transactions for
    # read_committed (null otherwise), and still the leader-epoch and log-start checks.
    create_topic(bootstrap, topic, partitions=1)
    F = m.FetchRequest
    with RawClient(bootstrap) as c:
        for i in range(3):
            assert produce_one(c, topic, 0, batch([b"x%d" % i])).error_code == NONE

        def fetch(offset, isolation=0, epoch=-1):
            resp = c.request(1, 12, F(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                                      isolation_level=isolation, topics=[F.FetchTopic(
                                          topic=topic, partitions=[F.FetchPartition(
                                              partition=0, fetch_offset=offset,
                                              current_leader_epoch=epoch,
                                              partition_max_bytes=1 << 20)])]))
            return resp.responses[0].partitions[0]

        for isolation, aborted in ((0, None), (1, [])):
            pd = fetch(3, isolation)
            assert (pd.error_code, bytes(pd.records), pd.high_watermark, pd.last_stable_offset,
                    pd.log_start_offset, pd.aborted_transactions) == (NONE, b"", 3, 3, 0, aborted)
        assert fetch(3, epoch=7).error_code == 75           # UNKNOWN_LEADER_EPOCH: a future epoch
        assert fetch(2).records and fetch(4).error_code == 1  # behind: data; past the end: out of range
        part = broker.broker.state.replicas.partition(topic, 0)
        part.log.log_start_offset = 4                       # as DeleteRecords past the end would
        try:
            assert fetch(3).error_code == 1                  # below the log start: out of range
        finally:
            part.log.log_start_offset = 0


def test_a_caught_up_read_is_reused_only_while_the_partition_is_unchanged(bootstrap, topic, broker):
    # Partition.read keeps the caught-up answer (and fetch its response entry) until the high
    # watermark, last stable offset or log start offset moves; each move must show in the next
    # response.
    create_topic(bootstrap, topic, partitions=1)
    F = m.FetchRequest
    part = broker.broker.state.replicas.partition(topic, 0)
    with RawClient(bootstrap) as c:
        assert produce_one(c, topic, 0, batch([b"a", b"b"])).error_code == NONE

        def fetch(offset):
            resp = c.request(1, 12, F(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
                F.FetchTopic(topic=topic, partitions=[F.FetchPartition(
                    partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])]))
            pd = resp.responses[0].partitions[0]
            return pd.error_code, bytes(pd.records), pd.high_watermark, pd.log_start_offset

        first = broker.call(lambda: part.read(2, 1 << 20))
        assert broker.call(lambda: part.read(2, 1 << 20)) is first       # reused
        assert broker.call(lambda: part.read(2, 1 << 20, read_committed=True)) is not first
        assert fetch(2) == (NONE, b"", 2, 0) and fetch(2) == (NONE, b"", 2, 0)
        assert produce_one(c, topic, 0, batch([b"c"])).error_code == NONE
        assert fetch(3) == (NONE, b"", 3, 0)                               # the new high watermark
        assert broker.call(lambda: part.read(3, 1 << 20)) is not first
        part.log.log_start_offset = 1                                      # as DeleteRecords would
        try:
            assert fetch(3) == (NONE, b"", 3, 1)                           # the new log start
        finally:
            part.log.log_start_offset = 0
        assert fetch(3) == (NONE, b"", 3, 0)


# -- pipelined produce ----------------------------------------------------------------------------

def test_a_parked_write_holds_up_its_own_partition_only(bootstrap, topic, broker):
    # Stand-in for a write the kernel parks (ext4 waiting on the inode's i_data_sem, 75-180 ms
    # measured): partition 0's writes complete only when the test says so. The producer's next
    # request, for partition 1 on the same connection, is appended and readable meanwhile, and
    # the two responses still come back in request order.
    create_topic(bootstrap, topic, partitions=2)
    log0 = broker.broker.state.replicas.partition(topic, 0).log
    parked = []
    real = log0._written_callback

    def parking(*args):
        done = real(*args)
        return lambda exc: parked.append((done, exc))
    log0._written_callback = parking
    try:
        with RawClient(bootstrap) as c:
            first = c.send(0, 9, produce_request({topic: {0: batch([b"parked"])}}, acks=1))
            second = c.send(0, 9, produce_request({topic: {1: batch([b"through"])}}, acks=1))
            got = wait_until(lambda: fetch_records(bootstrap, topic, 1), what="partition 1 readable")
            assert [r.value for r in got] == [b"through"]
            assert fetch_records(bootstrap, topic, 0) == [] and len(parked) == 1
            broker.call(lambda: [done(exc) for done, exc in parked])
            for cid in (first, second):
                header, resp = decode_response(0, 9, c.recv_frame())
                assert header.correlation_id == cid
                assert resp.responses[0].partition_responses[0].error_code == NONE
    finally:
        del log0._written_callback
    assert [r.value for r in fetch_records(bootstrap, topic, 0)] == [b"parked"]
