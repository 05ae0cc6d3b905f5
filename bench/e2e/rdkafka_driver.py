#!/usr/bin/env python3
"""librdkafka (confluent-kafka) workload driver: one workload per invocation, one JSON line out.

    python bench/e2e/rdkafka_driver.py produce  --bootstrap B --topic T --messages N --size S \
        [--acks 1|all] [--compression none|lz4] [--linger-ms 5] [--batch-size 1048576] [--time-limit 60]
    python bench/e2e/rdkafka_driver.py consume  --bootstrap B --topic T --messages N [--time-limit 60]
    python bench/e2e/rdkafka_driver.py latency  --bootstrap B --topic T --size S --rate R \
        --duration D [--warmup 1.0] [producer options as for produce]

produce   sends N messages of S bytes (random capital letters, like kafka-producer-perf-test;
          a pool of 1024 distinct payloads is cycled) as fast as the client accepts them; the
          clock runs from the first produce() call to the end of flush(), so every message counted
          was acknowledged at the requested acks. Delivery reports are requested for errors only.
consume   catch-up read: assigns every partition of T from the beginning (no group membership,
          no commits) and reads until N messages arrived; the clock starts at assign().
latency   fixed-rate end-to-end latency: a consumer subprocess (assign from the beginning) and
          this process producing R msgs/s for D seconds; each payload starts with the send time
          (CLOCK_MONOTONIC ns, which both processes share); latency = batch arrival time at the
          consumer minus send time. Messages sent in the first ``--warmup`` seconds are excluded
          from the percentiles (and counted separately).

Every run is bounded by its message count and by --time-limit (or --duration + a grace period):
when the limit passes, the run stops and reports what it completed, with "timed_out": true.
"""
from __future__ import annotations

import argparse
import array
import json
import os
import random
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PAYLOAD_POOL = 1024
CDF_QUANTILES = ([i / 100 for i in range(100)]
                 + [0.991, 0.993, 0.995, 0.997, 0.998, 0.999, 0.9995, 0.9999, 1.0])


# --- configuration --------------------------------------------------------------------------------

def producer_config(args) -> dict:
    return {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_size,
        "delivery.report.only.error": True,
        "client.id": "bench-rdkafka-producer",
    }


def consumer_config(bootstrap: str) -> dict:
    # confluent-kafka insists on a group.id; partitions are assign()ed and nothing is committed.
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-rdkafka-{os.getpid()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "client.id": "bench-rdkafka-consumer",
        # When its prefetch queue passes queued.max.messages.kbytes (64 MiB) because the broker
        # delivers faster than the Python loop takes messages, librdkafka stops fetching for
        # fetch.queue.backoff.ms, 1000 by default: a whole second of a ~1 s catch-up read, so the
        # faster broker lost. 1 KiB x 1M from one partition, one broker, 6 runs each: default
        # 437k-1050k msg/s in two clusters; with 10 ms 719k-947k.
        "fetch.queue.backoff.ms": 10,
    }


def payload_pool(size: int, count: int = PAYLOAD_POOL, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    letters = bytes(range(65, 91))
    return [bytes(rng.choices(letters, k=size)) for _ in range(count)]


# --- admin ---------------------------------------------------------------------------------------

_ADMINS: dict[str, AdminClient] = {}


def admin_for(bootstrap: str) -> AdminClient:
    """One AdminClient per bootstrap address, reused by the harness across cells."""
    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    return _ADMINS[bootstrap]


def forget_admin(bootstrap: str) -> None:
    _ADMINS.pop(bootstrap, None)


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0) -> float:
    """Creates topic (replication factor 1) and waits until metadata lists every partition with a
    leader. Returns the seconds it took."""
    t0 = time.monotonic()
    admin = admin_for(bootstrap)
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=timeout,
                                  request_timeout=timeout)
    futures[topic].result(timeout)
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
        t = meta.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 and p.error is None for p in t.partitions.values()):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError(f"topic {topic}: {partitions} partitions with leaders not seen in {timeout}s")


def delete_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> None:
    admin = admin_for(bootstrap)
    admin.delete_topics([topic], operation_timeout=timeout, request_timeout=timeout)[topic].result(timeout)


def partitions_of(client, topic: str, timeout: float = 10.0) -> list[int]:
    meta = client.list_topics(topic, timeout=timeout)
    t = meta.topics[topic]
    if t.error is not None:
        raise KafkaException(t.error)
    return sorted(t.partitions)


# --- produce -------------------------------------------------------------------------------------

class ErrorCounter:
    """Delivery callback: counts failed deliveries (only those are reported) and keeps the first."""

    def __init__(self):
        self.count = 0
        self.first = None

    def __call__(self, err, msg):
        if err is not None:
            self.count += 1
            self.first = self.first or str(err)


def produce_all(producer: Producer, topic: str, payloads: list[bytes], n: int, deadline: float) -> int:
    """Produces up to n messages, backing off on a full local queue; stops at deadline.
    Returns how many were handed to the client. Failed deliveries reach the producer's own
    on_delivery callback: one given per message costs the client ~25 % more CPU (measured 2.1-2.4
    against 1.6-1.75 CPU s per 1M x 1 KiB), which on 2 shared cores is the broker's too."""
    produce, poll, mask = producer.produce, producer.poll, len(payloads) - 1
    for i in range(n):
        while True:
            try:
                produce(topic, payloads[i & mask])
                break
            except BufferError:
                poll(0.001)
        if i & 0x3FF == 0:
            poll(0)
            if time.monotonic() > deadline:
                return i + 1
    return n


def cmd_produce(args) -> dict:
    payloads = payload_pool(args.size)
    errors = ErrorCounter()
    producer = Producer(dict(producer_config(args), on_delivery=errors))
    partitions_of(producer, args.topic)  # connect and fetch metadata before the clock starts
    t0 = time.monotonic()
    deadline = t0 + args.time_limit
    sent = produce_all(producer, args.topic, payloads, args.messages, deadline)
    unflushed = producer.flush(max(0.0, deadline - time.monotonic()) + 5.0)
    seconds = time.monotonic() - t0
    acked = sent - unflushed - errors.count
    return throughput_result(acked, args.size, seconds, requested=args.messages, errors=errors.count,
                             first_error=errors.first, timed_out=acked < args.messages,
                             config=producer_config(args))


def throughput_result(messages: int, size: int, seconds: float, **extra) -> dict:
    return {"messages": messages, "bytes": messages * size, "seconds": round(seconds, 4),
            "msgs_per_s": round(messages / seconds, 1) if seconds > 0 else 0.0,
            "mb_per_s": round(messages * size / seconds / 2**20, 3) if seconds > 0 else 0.0, **extra}


# --- consume -------------------------------------------------------------------------------------

def cmd_consume(args) -> dict:
    consumer = Consumer(consumer_config(args.bootstrap))
    try:
        parts = partitions_of(consumer, args.topic)
        t0 = time.monotonic()
        consumer.assign([TopicPartition(args.topic, p, -2) for p in parts])  # -2: OFFSET_BEGINNING
        r = read_until(consumer, args.messages, t0 + args.time_limit)
        end = time.monotonic()
    finally:
        consumer.close()
    after_first = end - r["first_at"] if r["first_at"] else 0.0
    rest = r["got"] - r["first_batch"]
    return throughput_result(r["got"], args.size, end - t0, requested=args.messages, errors=r["errors"],
                             first_error=r["first_error"], timed_out=r["got"] < args.messages,
                             first_message_seconds=round(r["first_at"] - t0, 4) if r["first_at"] else None,
                             after_first_msgs_per_s=round(rest / after_first, 1) if rest > 0 and after_first > 0
                             else None,  # None: everything came in the first batch
                             partitions=len(parts))


def read_until(consumer: Consumer, n: int, deadline: float) -> dict:
    """Reads until n messages arrived or deadline. Returns count, errors, the first error, and the
    arrival time and size of the first non-empty batch (for the rate after the first message)."""
    r = {"got": 0, "errors": 0, "first_error": None, "first_at": None, "first_batch": 0}
    while r["got"] < n and time.monotonic() < deadline:
        # consume() waits until it has num_messages or the timeout passes: never ask for more
        # than what is still missing, or the last call would idle out its timeout
        for msg in consumer.consume(min(10000, n - r["got"]), 0.2):
            err = msg.error()
            if err is None:
                r["got"] += 1
            elif err.code() != KafkaError._PARTITION_EOF:
                r["errors"] += 1
                r["first_error"] = r["first_error"] or str(err)
        if r["got"] and r["first_at"] is None:
            r["first_at"], r["first_batch"] = time.monotonic(), r["got"]
    return r


# --- latency -------------------------------------------------------------------------------------

def cmd_latency_consumer(args) -> dict:
    """Child of ``latency``: reads from the beginning, records (send ns, latency ns) pairs to
    --out, until the parent writes the number it sent on stdin and that many arrived (or the
    grace period after that passes, or --time-limit)."""
    consumer = Consumer(consumer_config(args.bootstrap))
    expected = {}
    threading.Thread(target=lambda: expected.setdefault("n", int(sys.stdin.readline() or 0)),
                     daemon=True).start()
    parts = partitions_of(consumer, args.topic)
    consumer.assign([TopicPartition(args.topic, p, -2) for p in parts])
    consumer.consume(1, 0.5)
    print("ready", flush=True)
    sent, lat = array.array("q"), array.array("q")
    deadline, grace_end, errors = time.monotonic() + args.time_limit, None, 0
    while time.monotonic() < deadline:
        batch = next_batch(consumer)
        now = time.monotonic_ns()
        for msg in batch:
            if msg.error() is None:
                t = int.from_bytes(msg.value()[:8], "big")
                sent.append(t)
                lat.append(now - t)
            elif msg.error().code() != KafkaError._PARTITION_EOF:
                errors += 1
        if "n" in expected:
            if len(sent) >= expected["n"]:
                break
            grace_end = grace_end or time.monotonic() + args.grace
            if time.monotonic() > grace_end:
                break
    consumer.close()
    with open(args.out, "wb") as f:
        f.write(len(sent).to_bytes(8, "little"))
        sent.tofile(f)
        lat.tofile(f)
    return {"received": len(sent), "errors": errors}


def next_batch(consumer: Consumer) -> list:
    """Waits up to 0.1 s for one message, then takes whatever else is already there.

    (consume(n, timeout) would wait for n messages or the whole timeout, adding up to the
    timeout to every latency.)"""
    first = consumer.poll(0.1)
    if first is None:
        return []
    return [first, *consumer.consume(10000, 0)]


def paced_produce(producer: Producer, topic: str, size: int, rate: float,
                  duration: float) -> tuple[int, int, float]:
    """Produces at `rate` msgs/s for `duration` s, each payload led by its send time.
    Returns (messages sent, start ns, seconds taken). Failures go to the producer's on_delivery."""
    pad = b"L" * (size - 8)
    total = int(rate * duration)
    start_ns = time.monotonic_ns()
    t0, i = time.monotonic(), 0
    while i < total:
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            try:
                producer.produce(topic, time.monotonic_ns().to_bytes(8, "big") + pad)
                i += 1
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
        if time.monotonic() - t0 > duration * 2 + 5:
            break  # the client cannot keep up at all: stop, the achieved rate shows it
        time.sleep(0.0005)
    return i, start_ns, time.monotonic() - t0


def percentiles(sorted_values, quantiles) -> list[float]:
    """Nearest-rank quantiles of an ascending sequence."""
    n = len(sorted_values)
    if n == 0:
        return [None for _ in quantiles]
    return [sorted_values[min(n - 1, max(0, int(q * n + 0.999999) - 1))] for q in quantiles]


def cmd_latency(args) -> dict:
    if args.size < 8:
        raise SystemExit("latency: --size must be at least 8 (the send timestamp)")
    out = f"/tmp/pybroker-bench-latency-{os.getpid()}.bin"
    child = subprocess.Popen([sys.executable, __file__, "latency-consumer", "--bootstrap", args.bootstrap,
                              "--topic", args.topic, "--out", out,
                              "--time-limit", str(args.duration * 3 + 30)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        return run_latency(args, child, out)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if os.path.exists(out):
            os.unlink(out)


def run_latency(args, child: subprocess.Popen, out: str) -> dict:
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("latency consumer did not start")
    errors = ErrorCounter()
    producer = Producer(dict(producer_config(args), on_delivery=errors))
    partitions_of(producer, args.topic)
    sent, start_ns, seconds = paced_produce(producer, args.topic, args.size, args.rate, args.duration)
    unflushed = producer.flush(30)
    child.stdin.write(f"{sent}\n")
    child.stdin.flush()
    child_result = json.loads(child.stdout.readline())
    child.wait(60)
    return latency_result(args, read_pairs(out), start_ns, sent, seconds, errors, unflushed, child_result)


def read_pairs(path: str) -> tuple[array.array, array.array]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        sent, lat = array.array("q"), array.array("q")
        sent.fromfile(f, n)
        lat.fromfile(f, n)
    return sent, lat


def per_second(sent_ns, lat_ns, start_ns) -> list:
    """[second since the first send, messages sent in it, p50 ms, max ms] per second of sending:
    shows whether a high p99 is one stall or the whole run."""
    seconds: dict[int, list] = {}
    for s, l in zip(sent_ns, lat_ns):
        seconds.setdefault((s - start_ns) // 1_000_000_000, []).append(l)
    out = []
    for second, lats in sorted(seconds.items()):
        lats.sort()
        out.append([second, len(lats), round(percentiles(lats, [0.5])[0] / 1e6, 2), round(lats[-1] / 1e6, 2)])
    return out


def latency_result(args, pairs, start_ns, sent, seconds, errors, unflushed, child_result) -> dict:
    sent_ns, lat_ns = pairs
    cutoff = start_ns + int(args.warmup * 1e9)
    steady = sorted(l for s, l in zip(sent_ns, lat_ns) if s >= cutoff)
    ms = [v / 1e6 if v is not None else None for v in percentiles(steady, [0.5, 0.99, 0.999, 1.0])]
    cdf = percentiles(steady, CDF_QUANTILES)
    return {
        "target_rate": args.rate, "achieved_rate": round(sent / seconds, 1) if seconds else 0.0,
        "sent": sent, "received": len(lat_ns), "measured": len(steady),
        "warmup_seconds": args.warmup, "warmup_excluded": len(lat_ns) - len(steady),
        "p50_ms": ms[0], "p99_ms": ms[1], "p999_ms": ms[2], "max_ms": ms[3],
        "mean_ms": round(sum(steady) / len(steady) / 1e6, 3) if steady else None,
        "cdf": [[q, v / 1e6] for q, v in zip(CDF_QUANTILES, cdf) if v is not None],
        "per_second": per_second(sent_ns, lat_ns, start_ns),
        "errors": errors.count, "first_error": errors.first, "unflushed": unflushed,
        "consumer_errors": child_result.get("errors"), "timed_out": len(lat_ns) < sent,
        "config": producer_config(args),
    }


# --- CLI -----------------------------------------------------------------------------------------

def add_producer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, required=True, help="message value size in bytes")
    p.add_argument("--acks", default="1", choices=["0", "1", "all", "-1"])
    p.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    p.add_argument("--linger-ms", type=float, default=5)
    p.add_argument("--batch-size", type=int, default=1048576)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume", "latency", "latency-consumer"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument("--time-limit", type=float, default=60.0, help="seconds (produce, consume)")
    cmds = sub.choices
    add_producer_options(cmds["produce"])
    cmds["produce"].add_argument("--messages", type=int, required=True)
    cmds["consume"].add_argument("--messages", type=int, required=True)
    cmds["consume"].add_argument("--size", type=int, default=0, help="message size, for MB/s")
    add_producer_options(cmds["latency"])
    cmds["latency"].add_argument("--rate", type=float, required=True, help="messages per second")
    cmds["latency"].add_argument("--duration", type=float, required=True, help="seconds of sending")
    cmds["latency"].add_argument("--warmup", type=float, default=1.0, help="seconds excluded")
    cmds["latency-consumer"].add_argument("--out", required=True)
    cmds["latency-consumer"].add_argument("--grace", type=float, default=10.0)
    return parser


COMMANDS = {"produce": cmd_produce, "consume": cmd_consume, "latency": cmd_latency,
            "latency-consumer": cmd_latency_consumer}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    result = COMMANDS[args.command](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
