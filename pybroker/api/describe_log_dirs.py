"""DescribeLogDirs (key 35), versions 1-5: the log dirs of this broker and what they hold.

Per log dir (`log.dirs`): error KAFKA_STORAGE_ERROR 56 when it is offline, its path, the requested
topics' partitions in it with their size in bytes (offset lag 0: no future replicas), and (v4+)
the file system's total and usable bytes (statvfs). `topics` null means every topic; a topic that
does not exist is left out, as Kafka does. In-memory storage reports one pseudo dir "<memory>"
with total and usable bytes -1. No dir is ever cordoned (v5).
"""
import os

from pybroker.codec.messages import DescribeLogDirsResponse

API_KEY = 35
VERSIONS = (1, 5)
R = DescribeLogDirsResponse
KAFKA_STORAGE_ERROR = 56
MEMORY_DIR = "<memory>"


def handle(ctx, req):
    logs = ctx.state.replicas.logs
    wanted = None if req.topics is None else {t.topic: set(t.partitions) for t in req.topics}
    if logs.storage == "memory":
        results = [_dir(MEMORY_DIR, 0, _topics(logs.all_logs().items(), wanted), -1, -1)]
    else:
        results = [_disk_dir(logs, d, wanted) for d in logs.dirs]
    return R(throttle_time_ms=0, error_code=0, results=results)


def _disk_dir(logs, d, wanted):
    if not d.online:
        return _dir(d.path, KAFKA_STORAGE_ERROR, [], -1, -1)
    held = [(tp, log) for tp, log in logs.all_logs().items() if logs.log_dirs_of.get(tp) is d]
    total, usable = _space(d.path)
    return _dir(d.path, 0, _topics(held, wanted), total, usable)


def _dir(path, code, topics, total, usable):
    return R.DescribeLogDirsResult(error_code=code, log_dir=path, topics=topics,
                                   total_bytes=total, usable_bytes=usable, is_cordoned=False)


def _topics(held, wanted):
    by_topic = {}
    for (topic, index), log in sorted(held, key=lambda item: item[0]):
        if wanted is not None and (topic not in wanted or index not in wanted[topic]):
            continue
        by_topic.setdefault(topic, []).append(R.DescribeLogDirsPartition(
            partition_index=index, partition_size=log.size, offset_lag=0, is_future_key=False))
    return [R.DescribeLogDirsTopic(name=t, partitions=ps) for t, ps in by_topic.items()]


def _space(path):
    try:
        st = os.statvfs(path)
    except OSError:
        return -1, -1
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
