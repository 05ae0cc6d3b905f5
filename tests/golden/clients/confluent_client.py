"""Golden-frame scenario (see scenario.py) with confluent-kafka (librdkafka)."""
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import scenario


def admin(bootstrap, prefix):
    client = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, num_partitions=1, replication_factor=1) for t in scenario.topics(prefix)]
    for future in client.create_topics(new + [NewTopic(f"{prefix}-tmp", 1, 1)]).values():
        future.result(30)
    for future in client.describe_configs([ConfigResource("topic", f"{prefix}-none")]).values():
        future.result(30)
    for future in client.delete_topics([f"{prefix}-tmp"]).values():
        future.result(30)


def produce(bootstrap, prefix):
    for codec in scenario.CODECS:
        producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                             "enable.idempotence": True, "linger.ms": 20})
        for key, value, headers in scenario.RECORDS:
            producer.produce(f"{prefix}-{codec}", key=key, value=value, headers=headers)
        if producer.flush(30) != 0:
            raise SystemExit(f"{codec}: messages not delivered")


def consume(bootstrap, prefix):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(scenario.topics(prefix))
    got, deadline = [], scenario.Deadline()
    while len(got) < len(scenario.expected()) and deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append((msg.topic(), msg.key(), msg.value(), msg.headers()))
    consumer.commit(asynchronous=False)
    end = time.monotonic() + scenario.HEARTBEAT_WAIT
    while time.monotonic() < end:
        consumer.poll(0.2)
    consumer.close()
    scenario.check(prefix, got)


def main(bootstrap, prefix):
    admin(bootstrap, prefix)
    produce(bootstrap, prefix)
    consume(bootstrap, prefix)


if __name__ == "__main__":
    main(*sys.argv[1:3])
