"""DeleteTopics drops the deleted topic's committed offsets from every group (Kafka does), so a
re-created topic of the same name starts without stale positions."""
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def _committed(bs, group, topic):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, 0)], timeout=10)]
    finally:
        c.close()


def test_recreated_topic_has_no_stale_committed_offsets(pybroker_broker):
    bs = pybroker_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("recreated", 1, 1)]).values():
        f.result(10)
    c = Consumer({"bootstrap.servers": bs, "group.id": "g-recreate", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("recreated", 0, 42)], asynchronous=False)
    c.close()
    assert _committed(bs, "g-recreate", "recreated") == [42]
    for f in admin.delete_topics(["recreated"]).values():
        f.result(10)
    for f in admin.create_topics([NewTopic("recreated", 1, 1)]).values():
        f.result(10)
    assert _committed(bs, "g-recreate", "recreated") == [-1001]  # OFFSET_INVALID: nothing committed
