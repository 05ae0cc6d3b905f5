#!/usr/bin/env python3
"""A/B of the broker's own cost for produce and fetch: two (or more) pybroker trees, one run.

    python bench/broker_ab.py --tree before=/tmp/pb-before --tree after=. [--fetch] [--reps 4]
        [--tree NAME=PATH@KEY=VALUE@KEY=VALUE ...]   (per-tree `pybroker serve` overrides)
        [--shape SIZE:PARTITIONS:RECORDS,...] [--requests 300] [--window 5] [--client rdkafka]
        [--override KEY=VALUE ...] [--spy perf|py-spy|strace --spy-dir DIR]

Each tree is a checkout with its compiled core built (e.g. `git worktree add` or `git archive`
of a commit, plus `python setup.py build_ext --inplace`). Per rep and tree (alternating the
order), `python -m pybroker serve` starts from that tree on an empty data dir; for each shape a
topic of PARTITIONS partitions is created and `--requests` pre-encoded Produce v9 requests
(acks=1, one batch of RECORDS records of SIZE random bytes per partition) are pipelined over one
raw socket, `--window` in flight, the first 5 unmeasured; with `--fetch` everything is then read
back with Fetch v12 (max_bytes 50 MiB, 1 MiB per partition). The client is a thin loop over a
socket, so the broker's CPU (utime + stime of its process from /proc, 10 ms ticks) is what is
measured, with wall-clock MB/s beside it. Medians over the reps, and the ratio to the first tree.
With `--client rdkafka` the e2e matrix's librdkafka driver writes as many bytes instead (and
reads them back from the beginning with `--fetch`), so a real client's pacing is in the figures;
`--latency RATE` runs the matrix's end-to-end latency workload at RATE msgs/s instead
(`--backlog GIB`: after writing that much to other topics, as a matrix cell does).

On a 2-core machine shared with other jobs throughput moves by 10-30 % between runs; CPU seconds
move less. Compare trees within one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_ref  # noqa: E402  (bench/ helper: free_port, api_versions_probe)

from pybroker.codec import messages as m  # noqa: E402
from pybroker.codec.protocol import decode_response, encode_request  # noqa: E402
from pybroker.codec.records import build_batch  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
WARMUP_REQUESTS = 5


def cpu_seconds(pid: int) -> float:
    # /proc/<pid>/stat after the last ')': field 14 utime, 15 stime (proc(5) numbering)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, tree: str, overrides: list[str]):
        self.port = kafka_ref.free_port()
        self.workdir = tempfile.mkdtemp(prefix="broker-ab-")
        cmd = [sys.executable, "-m", "pybroker", "serve",
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
               "--override", f"log.dir={self.workdir}/data"]
        for item in overrides:
            cmd += ["--override", item]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.path.join(tree, "core")]))
        with open(os.path.join(self.workdir, "console.out"), "wb") as out:
            self.process = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not kafka_ref.api_versions_probe("127.0.0.1", self.port, timeout=1.0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"broker from {tree} did not start")
            time.sleep(0.02)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise EOFError("broker closed the connection")
        got += k
    return buf


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return bytes(recv_exact(sock, size))


def create_topic(port: int, topic: str, partitions: int) -> None:
    T = m.CreateTopicsRequest
    body = T(timeout_ms=30000, validate_only=False, topics=[T.CreatableTopic(
        name=topic, num_partitions=partitions, replication_factor=1, assignments=[], configs=[])])
    with connect(port) as sock:
        sock.sendall(encode_request(19, 7, 1, "broker-ab", body))
        _, resp = decode_response(19, 7, recv_frame(sock))
    assert resp.topics[0].error_code == 0, resp.topics[0]


def produce_frames(topic, partitions, size, records, count):
    payload = random.Random(1).randbytes(size)
    batch = bytes(build_batch([(None, payload, [], int(time.time() * 1000))] * records))
    PR = m.ProduceRequest
    body = PR(acks=1, timeout_ms=30000, transactional_id=None, topic_data=[PR.TopicProduceData(
        name=topic, partition_data=[PR.PartitionProduceData(index=p, records=batch)
                                    for p in range(partitions)])])
    return [encode_request(0, 9, i + 1, "broker-ab", body) for i in range(count)], \
        len(batch) * partitions


def produce(port, frames, window):
    with connect(port) as sock:
        sent = done = 0
        while done < len(frames):
            while sent < len(frames) and sent - done < window:
                sock.sendall(frames[sent])
                sent += 1
            frame = recv_frame(sock)
            if done == 0:
                _, resp = decode_response(0, 9, frame)
                errors = [p.error_code for t in resp.responses for p in t.partition_responses]
                assert not any(errors), errors
            done += 1


def fetch_all(port, topic, partitions, total_bytes):
    F = m.FetchRequest
    offsets, got, cid = [0] * partitions, 0, 0
    with connect(port) as sock:
        while got < total_bytes:
            cid += 1
            body = F(max_wait_ms=500, min_bytes=1, max_bytes=50 << 20, topics=[F.FetchTopic(
                topic=topic, partitions=[F.FetchPartition(
                    partition=p, fetch_offset=offsets[p], partition_max_bytes=1 << 20)
                    for p in range(partitions)])])
            sock.sendall(encode_request(1, 12, cid, "broker-ab", body))
            _, resp = decode_response(1, 12, recv_frame(sock))
            for t in resp.responses:
                for p in t.partitions:
                    n, next_offset = _whole_batches(p.records or b"")
                    if n:
                        offsets[p.partition_index] = next_offset
                        got += n
    return got


def _whole_batches(records):
    """(bytes of whole batches, offset after the last) at the front of `records`.
    batch header: i64 base_offset | i32 batch_length @8 | ... | i32 last_offset_delta @23"""
    view, pos, next_offset = memoryview(records), 0, -1
    while pos + 61 <= len(view):
        length = struct.unpack_from(">i", view, pos + 8)[0]
        if pos + 12 + length > len(view):
            break
        base = struct.unpack_from(">q", view, pos)[0]
        next_offset = base + struct.unpack_from(">i", view, pos + 23)[0] + 1
        pos += 12 + length
    return pos, next_offset


class Spy:
    """Optional profiler attached to the broker around one measured phase."""

    def __init__(self, kind, directory, pid, tag):
        self.process = None
        if not kind:
            return
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, tag)
        cmd = {"perf": ["perf", "record", "-F", "999", "-g", "-o", path + ".perf", "-p", str(pid)],
               "py-spy": ["py-spy", "record", "-r", "250", "--nonblocking", "-f", "raw",
                          "-o", path + ".txt", "--pid", str(pid)],
               "strace": ["strace", "-c", "-f", "-o", path + ".strace", "-p", str(pid)]}[kind]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait()


RDKAFKA_DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e", "rdkafka_driver.py")


def run_driver(workload, port, topic, size, pid, *options):
    """One rdkafka_driver.py run (the e2e matrix's librdkafka client): (broker CPU s, its result).
    A run that timed out or lost messages stops the A/B."""
    cmd = [sys.executable, RDKAFKA_DRIVER, workload, "--bootstrap", f"127.0.0.1:{port}",
           "--topic", topic, "--size", str(size), *map(str, options)]
    c0 = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    c1 = cpu_seconds(pid)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r.get("timed_out") or r.get("errors"):
        raise SystemExit(f"{workload} failed: {r}")
    return c1 - c0, r


def rdkafka(workload, port, topic, size, messages, pid):
    """produce (acks=1, linger 5 ms, batch 1 MiB) or consume `messages`: (broker CPU s, MB/s)."""
    options = ["--messages", messages]
    if workload == "produce":
        options += ["--acks", "1", "--linger-ms", "5", "--batch-size", 1 << 20]
    cpu, r = run_driver(workload, port, topic, size, pid, *options)
    return cpu, r["bytes"] / r["seconds"] / 1e6


def rdkafka_latency(args, port, pid, topic, size, partitions, tag):
    """The e2e matrix's latency workload (acks=1, no compression) on a topic of its own, at
    --latency msgs/s: (broker CPU s, p50 ms, p99 ms). With --backlog, first that many GiB of
    1 KiB messages go to topics of as many partitions, left in place (as the earlier workloads
    of a matrix cell leave theirs, dirty in the page cache while the latency run goes)."""
    for i in range(args.backlog):
        create_topic(port, f"{topic}-backlog{i}", partitions)
        rdkafka("produce", port, f"{topic}-backlog{i}", 1024, 1 << 20, pid)
    create_topic(port, topic, partitions)
    spy = Spy(args.spy, args.spy_dir, pid, f"{tag}-{topic}")
    cpu, r = run_driver("latency", port, topic, size, pid, "--acks", "1", "--rate", args.latency,
                        "--duration", args.latency_seconds, "--warmup", 1)
    spy.stop()
    return {"latency_cpu_s": cpu, "latency_p50_ms": r["p50_ms"], "latency_p99_ms": r["p99_ms"]}


def run_rdkafka_shape(args, port, pid, topic, size, partitions, records, tag):
    if args.latency:
        return rdkafka_latency(args, port, pid, topic + "-latency", size, partitions, tag)
    messages = records * partitions * args.requests  # as many bytes as the raw client sends
    spy = Spy(args.spy, args.spy_dir, pid, f"{tag}-{topic}-produce")
    cpu, rate = rdkafka("produce", port, topic, size, messages, pid)
    spy.stop()
    r = {"produce_cpu_s": cpu, "produce_MBps": rate}
    if args.fetch:
        spy = Spy(args.spy, args.spy_dir, pid, f"{tag}-{topic}-fetch")
        cpu, rate = rdkafka("consume", port, topic, size, messages, pid)
        spy.stop()
        r.update(fetch_cpu_s=cpu, fetch_MBps=rate)
    return r


def run_tree(tree, args, shapes, tag):
    tree, *own = tree.split("@")
    server = Server(os.path.abspath(tree), args.override + own)
    pid, out = server.process.pid, {}
    try:
        for size, partitions, records in shapes:
            topic = f"ab-{size}-{partitions}-{records}"
            create_topic(server.port, topic, partitions)
            if args.client == "rdkafka":
                out[topic] = run_rdkafka_shape(args, server.port, pid, topic, size, partitions, records,
                                                tag)
                continue
            frames, request_bytes = produce_frames(topic, partitions, size, records, args.requests)
            produce(server.port, frames[:WARMUP_REQUESTS], args.window)
            spy = Spy(args.spy, args.spy_dir, pid, f"{tag}-{topic}-produce")
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            produce(server.port, frames[WARMUP_REQUESTS:], args.window)
            t1, c1 = time.perf_counter(), cpu_seconds(pid)
            spy.stop()
            measured = request_bytes * (len(frames) - WARMUP_REQUESTS)
            r = {"produce_cpu_s": c1 - c0, "produce_MBps": measured / (t1 - t0) / 1e6}
            if args.fetch:
                spy = Spy(args.spy, args.spy_dir, pid, f"{tag}-{topic}-fetch")
                c2, t2 = cpu_seconds(pid), time.perf_counter()
                got = fetch_all(server.port, topic, partitions, request_bytes * len(frames))
                t3, c3 = time.perf_counter(), cpu_seconds(pid)
                spy.stop()
                r.update(fetch_cpu_s=c3 - c2, fetch_MBps=got / (t3 - t2) / 1e6)
            out[topic] = r
        out["peak_rss_mib"] = peak_rss_mib(pid)
    finally:
        server.stop()
    return out


def report(results, names, metrics):
    first = results[names[0]]
    for key in first[0]:
        if key == "peak_rss_mib":
            continue
        cells = []
        for metric in metrics:
            values = [statistics.median(r[key][metric] for r in results[n]) for n in names]
            ratios = "".join(f" ({v / values[0]:.2f}x)" for v in values[1:] if values[0])
            cells.append(f"{metric} " + " ".join(f"{v:.3f}" for v in values) + ratios)
        print(f"{key:22} | " + " | ".join(cells))
    rss = {n: statistics.median(r["peak_rss_mib"] for r in results[n]) for n in names}
    print("peak RSS MiB:", " ".join(f"{n}={v:.1f}" for n, v in rss.items()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--shape", default="10240:16:6,1024:16:60,100:16:600,1024:1:970",
                    help="SIZE:PARTITIONS:RECORDS per batch (default: ~1 MiB requests)")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--fetch", action="store_true")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--client", choices=["raw", "rdkafka"], default="raw",
                    help="rdkafka: produce RECORDS x PARTITIONS x --requests messages of SIZE with the e2e "
                         "matrix's librdkafka driver (acks=1, linger 5 ms, batch 1 MiB), and with "
                         "--fetch read them back from the beginning (wall-clock MB/s includes the "
                         "client, which shares the cores)")
    ap.add_argument("--latency", type=float, default=0, metavar="MSGS_PER_S",
                    help="with --client rdkafka: instead of produce/fetch, run the e2e latency "
                         "workload per shape at this rate (broker CPU, p50, p99)")
    ap.add_argument("--latency-seconds", type=float, default=8)
    ap.add_argument("--backlog", type=int, default=0, metavar="GIB",
                    help="with --latency: write this many GiB to other topics first")
    ap.add_argument("--spy", choices=["perf", "py-spy", "strace"])
    ap.add_argument("--spy-dir", default="broker-ab-profiles")
    args = ap.parse_args(argv)
    if args.latency and args.client != "rdkafka":
        ap.error("--latency needs --client rdkafka")
    trees = [t.split("=", 1) for t in args.tree]
    shapes = [tuple(int(x) for x in s.split(":")) for s in args.shape.split(",")]
    results = {name: [] for name, _ in trees}
    for rep in range(args.reps):
        for name, path in (trees if rep % 2 == 0 else trees[::-1]):
            r = run_tree(path, args, shapes, f"{name}{rep}")
            results[name].append(r)
            print(rep, name, json.dumps(r, default=lambda v: round(v, 3)), flush=True)
    with open("/proc/loadavg") as f:
        print("load average at the end:", f.read().strip())
    metrics = ["produce_cpu_s", "produce_MBps"]
    if args.fetch:
        metrics += ["fetch_cpu_s", "fetch_MBps"]
    if args.latency:
        metrics = ["latency_cpu_s", "latency_p50_ms", "latency_p99_ms"]
    report(results, [n for n, _ in trees], metrics)


if __name__ == "__main__":
    main()
