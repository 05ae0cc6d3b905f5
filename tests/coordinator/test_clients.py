"""Consumer groups with real clients against the in-process broker: confluent-kafka (librdkafka;
classic and `group.protocol=consumer`), kafka-python, aiokafka, and Kafka's own
kafka-console-consumer and kafka-consumer-groups tools."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pbtest import REPO
from pybroker.testing import Broker

confluent_kafka = pytest.importorskip("confluent_kafka")
WAIT = 25.0
FAST = {"num.partitions": 6, "group.consumer.heartbeat.interval.ms": 500,
        "group.consumer.session.timeout.ms": 6000, "group.min.session.timeout.ms": 1000}


@pytest.fixture
def broker():
    with Broker(config=FAST) as b:
        yield b


def produce(bootstrap, topic, per_partition=10, partitions=6):
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for i in range(per_partition * partitions):
        p.produce(topic, f"v{i}".encode(), partition=i % partitions)
    assert p.flush(15) == 0


def wait_until(predicate, what, poll=(), timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for consumer in poll:
            consumer.poll(0.05)
        if predicate():
            return
        if not poll:
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def consumer(bootstrap, protocol, **extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": extra.pop("group", "grp"),
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "group.protocol": protocol}
    if protocol == "classic":
        conf.update({"session.timeout.ms": 3000, "heartbeat.interval.ms": 500,
                     "partition.assignment.strategy": "range"})
    conf.update(extra)
    return confluent_kafka.Consumer(conf)


def owned(c):
    return frozenset(tp.partition for tp in c.assignment())


VICTIM = textwrap.dedent("""
    import json, sys
    from confluent_kafka import Consumer
    conf = json.loads(sys.argv[1])
    c = Consumer(conf)
    def report(event):
        def callback(consumer, partitions):
            print(event, json.dumps(sorted(p.partition for p in partitions)), flush=True)
        return callback
    c.subscribe([sys.argv[2]], on_assign=report("assign"), on_revoke=report("revoke"),
                on_lost=report("revoke"))
    while True:
        c.poll(0.1)
""")


def start_victim(bootstrap, protocol, topic):
    conf = {"bootstrap.servers": bootstrap, "group.id": "grp", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "group.protocol": protocol}
    if protocol == "classic":
        conf.update({"session.timeout.ms": 3000, "heartbeat.interval.ms": 500,
                     "partition.assignment.strategy": "range"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO / "core"), str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", VICTIM, json.dumps(conf), topic],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_three_consumers_share_six_partitions_and_survivors_take_over_after_sigkill(broker,
                                                                                     protocol):
    produce(broker.bootstrap_servers, "events")
    victim = start_victim(broker.bootstrap_servers, protocol, "events")
    try:
        survivors = [consumer(broker.bootstrap_servers, protocol) for _ in range(2)]
        for c in survivors:
            c.subscribe(["events"])
        victim_owned = set()

        def victim_assigned():
            import select
            while select.select([victim.stdout], [], [], 0)[0]:
                line = victim.stdout.readline()
                if not line:
                    break
                event, partitions = line.split(" ", 1)
                if event == "revoke":
                    victim_owned.difference_update(json.loads(partitions))
                elif protocol == "classic":          # eager: each assign is the whole set
                    victim_owned.clear()
                    victim_owned.update(json.loads(partitions))
                else:                                # incremental (KIP-848)
                    victim_owned.update(json.loads(partitions))
            return victim_owned

        def balanced():
            shares = [owned(c) for c in survivors] + [frozenset(victim_assigned())]
            return sorted(map(len, shares)) == [2, 2, 2] and \
                frozenset().union(*shares) == frozenset(range(6))
        wait_until(balanced, "three disjoint shares of two partitions", poll=survivors)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_until(lambda: owned(survivors[0]) | owned(survivors[1]) == frozenset(range(6))
                   and not owned(survivors[0]) & owned(survivors[1]),
                   "the survivors to own all six partitions", poll=survivors)
        for c in survivors:
            c.close()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_commits_after_processing_lose_nothing_across_a_rebalance(broker, protocol):
    produce(broker.bootstrap_servers, "orders", per_partition=20)
    seen = []
    first = consumer(broker.bootstrap_servers, protocol)
    first.subscribe(["orders"])
    deadline = time.monotonic() + WAIT
    while len(seen) < 40 and time.monotonic() < deadline:
        m = first.poll(0.1)
        if m is not None and m.error() is None:
            seen.append((m.partition(), m.offset()))
            first.commit(message=m, asynchronous=False)
    first.close()                        # leaves the group; its commits stand
    second = consumer(broker.bootstrap_servers, protocol)
    second.subscribe(["orders"])
    deadline = time.monotonic() + WAIT
    while len(set(seen)) < 120 and time.monotonic() < deadline:
        m = second.poll(0.1)
        if m is not None and m.error() is None:
            seen.append((m.partition(), m.offset()))
    second.close()
    assert set(seen) == {(p, o) for p in range(6) for o in range(20)}
    assert len(seen) == 120               # committed work is not consumed twice


def test_kafka_python_group_commit_and_committed_metadata(broker):
    kafka = pytest.importorskip("kafka")
    produce(broker.bootstrap_servers, "kp")
    c = kafka.KafkaConsumer("kp", bootstrap_servers=broker.bootstrap_servers, group_id="kp-grp",
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            consumer_timeout_ms=10000)
    count = 0
    for _ in c:
        count += 1
        if count == 60:
            break
    assert len(c.assignment()) == 6
    tp = kafka.TopicPartition("kp", 3)
    c.commit({tp: kafka.OffsetAndMetadata(7, "checkpoint-3", -1)})
    assert c.committed(tp) == 7
    c.close()
    admin = kafka.KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    offsets = admin.list_group_offsets({"kp-grp": None})["kp-grp"]
    assert (offsets[tp].offset, offsets[tp].metadata) == (7, "checkpoint-3")
    assert {"group_id": "kp-grp", "protocol_type": "consumer", "group_state": "Empty",
            "group_type": "classic"} in admin.list_groups()
    described = admin.describe_groups(["kp-grp"])["kp-grp"]
    assert (described["group_state"], described["members"]) == ("Empty", [])
    admin.close()


def test_aiokafka_static_member_restarts_without_a_rebalance(broker):
    aiokafka = pytest.importorskip("aiokafka")
    produce(broker.bootstrap_servers, "static")

    async def scenario():
        def make(instance):
            return aiokafka.AIOKafkaConsumer(
                "static", bootstrap_servers=broker.bootstrap_servers, group_id="static-grp",
                group_instance_id=instance, auto_offset_reset="earliest",
                enable_auto_commit=False, session_timeout_ms=10000,
                heartbeat_interval_ms=500)
        a, b = make("a"), make("b")
        await a.start()
        await b.start()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and \
                sorted(len(c.assignment()) for c in (a, b)) != [3, 3]:
            await asyncio.gather(a.getmany(timeout_ms=100), b.getmany(timeout_ms=100))
        before = {p.partition for p in b.assignment()}
        assert sorted(len(c.assignment()) for c in (a, b)) == [3, 3]
        generation = _classic_group(broker, "static-grp").generation_id
        await b.stop()                     # a static member does not leave the group
        b2 = make("b")
        await b2.start()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not b2.assignment():
            await asyncio.gather(a.getmany(timeout_ms=100), b2.getmany(timeout_ms=100))
        assert {p.partition for p in b2.assignment()} == before
        assert _classic_group(broker, "static-grp").generation_id == generation
        await a.stop()
        await b2.stop()
    asyncio.run(scenario())


def _classic_group(b, group_id):
    async def get():
        coordinator = b.broker.state.group_coordinator
        return coordinator.shards[coordinator.partition_for(group_id)].groups[group_id]
    return b.call(get)


def test_committed_offsets_survive_a_broker_restart(tmp_path):
    with Broker(storage="disk", data_dir=str(tmp_path), config=FAST) as b:
        produce(b.bootstrap_servers, "durable")
        c = consumer(b.bootstrap_servers, "classic", group="durable-grp")
        c.subscribe(["durable"])
        wait_until(lambda: len(owned(c)) == 6, "the assignment", poll=[c])
        c.commit(offsets=[confluent_kafka.TopicPartition("durable", p, 5 + p) for p in range(6)],
                 asynchronous=False)
        c.close()
        port = b.port
    with Broker(storage="disk", data_dir=str(tmp_path), config=FAST, port=port) as b:
        c = consumer(b.bootstrap_servers, "classic", group="durable-grp")
        committed = c.committed([confluent_kafka.TopicPartition("durable", p) for p in range(6)],
                                timeout=WAIT)
        assert [(tp.partition, tp.offset) for tp in committed] == [(p, 5 + p) for p in range(6)]
        c.close()


@pytest.mark.java
def test_kafka_consumer_groups_tool_describe_reset_delete(broker):
    import kafka_tools
    produce(broker.bootstrap_servers, "tooling")
    c = consumer(broker.bootstrap_servers, "classic", group="tool-grp")
    c.subscribe(["tooling"])
    wait_until(lambda: len(owned(c)) == 6, "the assignment", poll=[c])
    c.commit(offsets=[confluent_kafka.TopicPartition("tooling", p, 4) for p in range(6)],
             asynchronous=False)
    server = ["--bootstrap-server", broker.bootstrap_servers]
    described = kafka_tools.run_tool("kafka-consumer-groups", *server, "--describe", "--group",
                                     "tool-grp").stdout
    rows = [line.split() for line in described.splitlines() if line.startswith("tool-grp")]
    assert len(rows) == 6
    assert {(r[1], r[2], r[3], r[4], r[5]) for r in rows} == {
        ("tooling", str(p), "4", "10", "6") for p in range(6)}   # topic partition cur end lag
    busy = kafka_tools.run_tool("kafka-consumer-groups", *server, "--delete", "--group",
                                "tool-grp", check=False)
    assert "not empty" in (busy.stdout + busy.stderr).lower() or "NON_EMPTY" in busy.stdout + busy.stderr
    c.close()
    reset = kafka_tools.run_tool("kafka-consumer-groups", *server, "--reset-offsets", "--group",
                                 "tool-grp", "--topic", "tooling", "--to-offset", "8", "--execute")
    assert reset.stdout.count(" 8") >= 6, reset.stdout
    check = consumer(broker.bootstrap_servers, "classic", group="tool-grp")
    committed = check.committed([confluent_kafka.TopicPartition("tooling", p) for p in range(6)],
                                timeout=WAIT)
    assert {tp.offset for tp in committed} == {8}
    check.close()
    kafka_tools.run_tool("kafka-consumer-groups", *server, "--delete", "--group", "tool-grp")
    listed = kafka_tools.run_tool("kafka-consumer-groups", *server, "--list").stdout
    assert "tool-grp" not in listed.split()


@pytest.mark.java
@pytest.mark.parametrize("protocol", ["consumer", "classic"])
def test_java_consumer_commits_and_the_tool_describes_live_members(broker, protocol):
    import kafka_tools
    produce(broker.bootstrap_servers, "java-in")
    out = kafka_tools.run_tool("kafka-console-consumer", "--bootstrap-server",
                               broker.bootstrap_servers, "--topic", "java-in", "--group",
                               f"java-{protocol}", "--from-beginning", "--max-messages", "60",
                               "--consumer-property", f"group.protocol={protocol}",
                               "--timeout-ms", "30000")
    values = [line for line in out.stdout.splitlines() if line.startswith("v")]  # not warnings
    assert sorted(values) == sorted(f"v{i}" for i in range(60))
    live = consumer(broker.bootstrap_servers, protocol, group=f"java-{protocol}",
                    **{"client.id": "live-one"})
    live.subscribe(["java-in"])
    wait_until(lambda: len(owned(live)) == 6, "the assignment", poll=[live])
    server = ["--bootstrap-server", broker.bootstrap_servers, "--group", f"java-{protocol}"]
    offsets = kafka_tools.run_tool("kafka-consumer-groups", *server, "--describe").stdout
    rows = [line.split() for line in offsets.splitlines() if line.startswith(f"java-{protocol}")]
    assert {(r[2], r[3], r[5]) for r in rows} == {(str(p), "10", "0") for p in range(6)}
    members = kafka_tools.run_tool("kafka-consumer-groups", *server, "--describe",
                                   "--members").stdout
    member_rows = [line.split() for line in members.splitlines()
                   if line.startswith(f"java-{protocol}")]
    assert len(member_rows) == 1 and "live-one" in member_rows[0] and "6" in member_rows[0]
    state = kafka_tools.run_tool("kafka-consumer-groups", *server, "--describe", "--state").stdout
    assert "Stable" in state
    live.close()


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_upgrade_a_live_classic_group_with_a_consumer_protocol_member(broker, strategy):
    produce(broker.bootstrap_servers, "migrate")
    old = consumer(broker.bootstrap_servers, "classic", group="mig",
                   **{"partition.assignment.strategy": strategy})
    old.subscribe(["migrate"])
    wait_until(lambda: len(owned(old)) == 6, "the classic member's assignment", poll=[old])
    new = consumer(broker.bootstrap_servers, "consumer", group="mig")
    new.subscribe(["migrate"])

    def shared():
        a, b = owned(old), owned(new)
        return len(a) == 3 and len(b) == 3 and a | b == frozenset(range(6))
    wait_until(shared, "both protocols' members to share the partitions", poll=[old, new])
    assert _group_type(broker, "mig") == "consumer"
    old.close()
    wait_until(lambda: owned(new) == frozenset(range(6)), "the new member to take over",
               poll=[new])
    new.close()


def _group_type(b, group_id):
    async def get():
        coordinator = b.broker.state.group_coordinator
        return coordinator.shards[coordinator.partition_for(group_id)].groups[group_id].type
    return b.call(get)
