"""DeleteRecords (key 21), versions 0-2: raise partitions' log start offsets (the low watermark).

Per partition: offset -1 means the high watermark; an offset below -1 or above the high watermark
is OFFSET_OUT_OF_RANGE 1; a topic whose cleanup.policy lacks `delete` is POLICY_VIOLATION 44 and an
internal topic INVALID_TOPIC_EXCEPTION 17 (as Kafka); unknown partitions
UNKNOWN_TOPIC_OR_PARTITION 3; an offline log KAFKA_STORAGE_ERROR 56. The answer carries the new
log start offset (`low_watermark`). Segments wholly below it are deleted at once (their files
renamed .deleted, removed after file.delete.delay.ms) unless the cleaner is working on the log
(then at the next retention check), and the log-start-offset checkpoint is written before the
response, so a restart never brings deleted records back. One replica: no purgatory wait.
"""
from pybroker.codec.messages import DeleteRecordsResponse
from pybroker.log.errors import LogError
from pybroker.metadata.store import INTERNAL_TOPICS

API_KEY = 21
VERSIONS = (0, 2)
R = DeleteRecordsResponse
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
POLICY_VIOLATION = 44
HIGH_WATERMARK = -1


def handle(ctx, req):
    topics = [R.DeleteRecordsTopicResult(name=t.name, partitions=[
        _one(ctx.state, t.name, p.partition_index, p.offset) for p in t.partitions])
        for t in req.topics]
    return _persisted(ctx, R(throttle_time_ms=0, topics=topics))


def _result(index, code, low=-1):
    return R.DeleteRecordsPartitionResult(partition_index=index, low_watermark=low, error_code=code)


def _one(state, topic, index, offset):
    part = state.replicas.partition(topic, index)
    if part is None:
        return _result(index, UNKNOWN_TOPIC_OR_PARTITION)
    if topic in INTERNAL_TOPICS:
        return _result(index, INVALID_TOPIC_EXCEPTION)
    log = part.log
    if not log.config.delete:
        return _result(index, POLICY_VIOLATION)
    try:
        target = log.high_watermark if offset == HIGH_WATERMARK else offset
        if target < 0:
            return _result(index, OFFSET_OUT_OF_RANGE)
        log.maybe_increment_log_start_offset(target)
        if not state.replicas.logs.cleaner.is_cleaning((topic, index)):
            log.delete_old_segments(retention=False)
    except LogError as exc:
        return _result(index, exc.error_code)
    return _result(index, 0, log.log_start_offset)


async def _persisted(ctx, resp):
    await ctx.state.replicas.logs.checkpoint()
    return resp
