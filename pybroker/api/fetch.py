"""Fetch (key 1), versions 4-18 (consumers; follower fetches arrive with the replication issue).

Long poll: answers at once when at least `min_bytes` are available, an error occurred, or
`max_wait_ms` is 0; otherwise waits in the purgatory until an append to one of the fetched
partitions brings enough bytes or max_wait_ms runs out. Limits: `max_bytes` for the response and
`partition_max_bytes` per partition, except that the first batch of the first partition with data
is returned whole even when larger (KIP-74), so a consumer can always make progress.
Fetch sessions (KIP-227) via FetchSessionCache; v13+ names topics by id (UNKNOWN_TOPIC_ID 100).
Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION 3, OFFSET_OUT_OF_RANGE 1 (with high watermark and
log start offset), FENCED_LEADER_EPOCH 74 / UNKNOWN_LEADER_EPOCH 75 for a stale or future
current_leader_epoch. read_committed (isolation_level 1) reads up to the last stable offset and gets
an aborted-transactions list (empty until transactions exist).
"""
import asyncio

from pybroker.api.fetch_session import FetchSessionError, SessionPartition
from pybroker.codec.messages import ZERO_UUID, FetchResponse
from pybroker.replica.errors import PartitionError

API_KEY = 1
VERSIONS = (4, 18)
R = FetchResponse
UNKNOWN_TOPIC_OR_PARTITION = 3
UNKNOWN_TOPIC_ID = 100
READ_COMMITTED = 1
# The tagged structs every PartitionData carries, at their defaults: one shared instance each
# instead of three new objects per partition per response. Never mutated (to set one, assign a
# new struct to the PartitionData).
_NO_DIVERGING_EPOCH = R.EpochEndOffset()
_NO_CURRENT_LEADER = R.LeaderIdAndEpoch()
_NO_SNAPSHOT_ID = R.SnapshotId()


def handle(ctx, req):
    by_id = ctx.api_version >= 13
    updates = []
    for t in req.topics:
        topic = t.topic_id if by_id else t.topic
        for p in t.partitions:
            updates.append(((topic, p.partition), SessionPartition(
                fetch_offset=p.fetch_offset, max_bytes=p.partition_max_bytes,
                log_start_offset=p.log_start_offset, current_leader_epoch=p.current_leader_epoch,
                last_fetched_epoch=p.last_fetched_epoch)))
    forgotten = [((f.topic_id if by_id else f.topic), p)
                 for f in (req.forgotten_topics_data or ()) for p in f.partitions]
    try:
        fctx = ctx.state.fetch_sessions.new_context(req.session_id, req.session_epoch, updates,
                                                    forgotten)
    except FetchSessionError as exc:
        return R(throttle_time_ms=0, error_code=exc.code, session_id=0, responses=[])
    resolved = [(key, _resolve(ctx.state, key, by_id), sp) for key, sp in fctx.partitions.items()]
    read = _read_all(ctx, req, resolved)
    if _satisfied(req, read):
        return _response(ctx, fctx, resolved, read)
    return _long_poll(ctx, req, fctx, resolved, read)


async def _long_poll(ctx, req, fctx, resolved, read):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.max_wait_ms / 1000
    keys = [part.key for _, part, _ in resolved if part is not None]
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0 or not await ctx.state.purgatory.wait(keys, remaining):
            break
        read = _read_all(ctx, req, resolved)
        if _satisfied(req, read):
            # answer with this read: nothing ran since it. Reading every partition again (as
            # this did) doubled the read cost of each woken fetch over many partitions.
            return _response(ctx, fctx, resolved, read)
    # max_wait_ms ran out: read once more, the partitions may have changed without a wake-up
    # (a high watermark or log start offset moved, a partition deleted)
    return _response(ctx, fctx, resolved, _read_all(ctx, req, resolved))


def _resolve(state, key, by_id):
    topic, index = key
    if by_id:
        info = state.metadata.by_id.get(topic)
        if info is None:
            return None
        topic = info.name
    return state.replicas.partition(topic, index)


def _read_all(ctx, req, resolved):
    """[(error, PartitionRead|None)] in session order, honouring max_bytes and KIP-74."""
    budget = req.max_bytes
    committed = req.isolation_level == READ_COMMITTED
    out = []
    for key, part, sp in resolved:
        if part is None:
            out.append((UNKNOWN_TOPIC_ID if isinstance(key[0], bytes) else UNKNOWN_TOPIC_OR_PARTITION,
                        None))
            continue
        limit = min(sp.max_bytes, max(budget, 0))
        try:
            r = part.read(sp.fetch_offset, limit, min_one=budget == req.max_bytes,
                          read_committed=committed, current_leader_epoch=sp.current_leader_epoch)
        except PartitionError as exc:
            out.append((exc.code, part))
            continue
        budget -= r.size
        out.append((0, r))
    return out


def _satisfied(req, read):
    if req.max_wait_ms <= 0:
        return True
    total = 0
    for err, r in read:
        if err:
            return True
        total += r.size
    return total >= req.min_bytes


def _response(ctx, fctx, resolved, read):
    topics = {}
    order = []
    for (key, part, sp), (err, r) in zip(resolved, read):
        if err:
            hw = lso = start = -1
            if part is not None:
                hw, lso, start = part.high_watermark, part.last_stable_offset, part.log_start_offset
            has_records = False
        else:
            hw, lso, start = r.high_watermark, r.last_stable_offset, r.log_start_offset
            has_records = r.size > 0
        # an incremental session leaves out partitions with nothing new: decide before building
        if not fctx.include(key, has_records, err, hw, lso, start):
            continue
        if err:
            pd = _partition_data(key[1], err, hw, lso, start, b"", [])  # b"": librdkafka rejects null
        else:
            pd = r.response
            if pd is None:
                pd = _partition_data(key[1], 0, hw, lso, start, r.records, r.aborted_transactions)
                if not r.size:
                    r.response = pd     # reused with the read (Partition.read)
        t = topics.get(key[0])
        if t is None:
            t = topics[key[0]] = (R.FetchableTopicResponse(topic_id=key[0], partitions=[])
                                  if isinstance(key[0], bytes) and ctx.api_version >= 13 else
                                  R.FetchableTopicResponse(topic=key[0], topic_id=ZERO_UUID,
                                                           partitions=[]))
            order.append(t)
        t.partitions.append(pd)
    return R(throttle_time_ms=0, error_code=0, session_id=fctx.session_id, responses=order)


def _partition_data(index, err, hw, lso, start, records, aborted):
    return R.PartitionData(partition_index=index, error_code=err, high_watermark=hw,
                           last_stable_offset=lso, log_start_offset=start, records=records,
                           aborted_transactions=aborted, diverging_epoch=_NO_DIVERGING_EPOCH,
                           current_leader=_NO_CURRENT_LEADER, snapshot_id=_NO_SNAPSHOT_ID)
