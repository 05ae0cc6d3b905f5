"""Golden-frame scenario (see scenario.py) with kafka-python."""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

import scenario

RECORDS = scenario.records(null_header_values=False)


def admin(bootstrap, prefix):
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    new = [NewTopic(t, num_partitions=1, replication_factor=1) for t in scenario.topics(prefix)]
    client.create_topics(new + [NewTopic(f"{prefix}-tmp", 1, 1)])
    client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{prefix}-none")])
    client.delete_topics([f"{prefix}-tmp"])
    client.close()


def produce(bootstrap, prefix):
    for codec in scenario.CODECS:
        producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                 compression_type=None if codec == "none" else codec, linger_ms=20)
        futures = [producer.send(f"{prefix}-{codec}", key=key, value=value, headers=headers)
                   for key, value, headers in RECORDS]
        producer.flush(30)
        for future in futures:
            future.get(30)
        producer.close()


def consume(bootstrap, prefix):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{prefix}-group",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.subscribe(scenario.topics(prefix))
    got, deadline = [], scenario.Deadline()
    while len(got) < len(scenario.expected(RECORDS)) and deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += [(r.topic, r.key, r.value, r.headers) for r in records]
    consumer.commit()
    end = time.monotonic() + scenario.HEARTBEAT_WAIT
    while time.monotonic() < end:
        consumer.poll(timeout_ms=200)
    consumer.close()
    scenario.check(prefix, got, RECORDS)


def main(bootstrap, prefix):
    admin(bootstrap, prefix)
    produce(bootstrap, prefix)
    consume(bootstrap, prefix)


if __name__ == "__main__":
    main(*sys.argv[1:3])
