"""Golden-frame scenario (see scenario.py) with aiokafka."""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import scenario


async def admin(bootstrap, prefix):
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        new = [NewTopic(t, num_partitions=1, replication_factor=1) for t in scenario.topics(prefix)]
        await client.create_topics(new + [NewTopic(f"{prefix}-tmp", 1, 1)])
        await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{prefix}-none")])
        await client.delete_topics([f"{prefix}-tmp"])
    finally:
        await client.close()


async def produce(bootstrap, prefix):
    for codec in scenario.CODECS:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                    compression_type=None if codec == "none" else codec, linger_ms=20)
        await producer.start()
        try:
            futures = [await producer.send(f"{prefix}-{codec}", key=key, value=value, headers=headers)
                       for key, value, headers in scenario.RECORDS]
            await asyncio.wait_for(asyncio.gather(*futures), 30)
        finally:
            await producer.stop()


async def consume(bootstrap, prefix):
    consumer = AIOKafkaConsumer(*scenario.topics(prefix), bootstrap_servers=bootstrap,
                                group_id=f"{prefix}-group", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got = []
    try:
        deadline = scenario.Deadline()
        while len(got) < len(scenario.expected()) and deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got += [(r.topic, r.key, r.value, list(r.headers)) for r in records]
        await consumer.commit()
        await asyncio.sleep(scenario.HEARTBEAT_WAIT)
    finally:
        await consumer.stop()
    scenario.check(prefix, got)


async def main(bootstrap, prefix):
    await admin(bootstrap, prefix)
    await produce(bootstrap, prefix)
    await consume(bootstrap, prefix)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
