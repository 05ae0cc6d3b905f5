"""Log-lifecycle benchmarks in one run (asv twin: benchmarks/bench_cleaner.py).

    python bench/cleaner_bench.py [--mib M] [--skip-latency]

Tables:
  1. cleaner core over M MiB of batches (100-record uncompressed batches, 4 updates per key):
     offset-map build and record filter, compiled vs pure, MB/s of input
  2. cleaning a disk log end to end (map, filter, write, fsync, swap) with LogCleaner.clean_now
  3. produce latency of a `pybroker serve` broker, idle and while its cleaner compacts a large
     topic (sequential 1-record acks=1 produce requests from this process over 127.0.0.1):
     p50/p99 and the p99 ratio during/idle, compiled (unthrottled and at 20 MiB/s) and pure
     brokers, and the cleaner's MB/s there
  4. a retention pass over 1,000 partitions: nothing to delete, and two expired segments each
     (the pass on the loop: renames to .deleted; the unlinks, deferred to the writer)
The machine is shared (2 cores, other builds running): compare columns of one run, not runs.
"""
import argparse
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # this tree, not an installed copy
from benchmarks.bench_cleaner import (  # noqa: E402
    MIB, cleaner_module, make_batches, make_disk_log, make_partitions, map_and_clean,
    retention_pass_ms)


def core_table(mib):
    data, last = make_batches(mib * MIB)
    small, small_last = make_batches(max(1, mib // 8) * MIB)        # same key mix, smaller
    rows = []
    for name, d, lo in (("compiled", data, last), ("pure", small, small_last)):
        mod = cleaner_module(name)
        best = min((map_and_clean(mod, d, lo) for _ in range(3)), key=lambda r: r[0] + r[1])
        t_map, t_clean, out = best
        size = len(d) / MIB
        rows.append((name, size, size / t_map, size / t_clean, size / (t_map + t_clean), out / len(d)))
    print(f"\n1. cleaner core (MB/s of input; {mib} MiB compiled, {rows[1][1]:.0f} MiB pure)")
    print(f"{'implementation':<16}{'map build':>12}{'filter':>12}{'together':>12}{'kept':>8}")
    for name, _, m, c, both, kept in rows:
        print(f"{name:<16}{m:>12.1f}{c:>12.1f}{both:>12.1f}{kept:>7.0%}")
    print(f"{'compiled/pure':<16}{rows[0][2] / rows[1][2]:>11.1f}x{rows[0][3] / rows[1][3]:>11.1f}x"
          f"{rows[0][4] / rows[1][4]:>11.1f}x")


def disk_table(mib):
    print(f"\n2. cleaning a {mib} MiB disk log end to end (compiled, this process)")
    work = tempfile.mkdtemp(prefix="bench-clean-")
    try:
        mgr, log = make_disk_log(work, mib * MIB)
        size = log.size
        t0 = time.perf_counter()
        mgr.cleaner.clean_now("bench", 0)
        dt = time.perf_counter() - t0
        print(f"{'read':>10}{'kept':>10}{'seconds':>10}{'MB/s':>10}")
        print(f"{size / MIB:>9.1f}M{log.size / MIB:>9.1f}M{dt:>10.2f}{size / MIB / dt:>10.1f}")
        mgr.shutdown_sync()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- produce latency while cleaning ----------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(workdir, pure, throttle=None):
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "core"), env.get("PYTHONPATH", "")])
    env["PYBROKER_PURE"] = "1" if pure else "0"
    argv = [sys.executable, "-m", "pybroker", "serve", "--log-level", "warning"]
    for kv in (f"listeners=PLAINTEXT://127.0.0.1:{port}", f"log.dirs={workdir}/data",
               "log.cleaner.backoff.ms=50", "log.cleaner.dedupe.buffer.size=67108864",
               "log.initial.task.delay.ms=0",
               *([f"log.cleaner.io.max.bytes.per.second={throttle}"] if throttle else [])):
        argv += ["--override", kv]
    out = open(f"{workdir}/serve.out", "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 30
    while b"started:" not in pathlib.Path(f"{workdir}/serve.out").read_bytes():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(pathlib.Path(f"{workdir}/serve.out").read_text()[-2000:])
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def _client(bootstrap):
    sys.path.insert(0, str(ROOT / "tests" / "broker"))
    from rawclient import RawClient
    return RawClient(bootstrap, timeout=60)


def _create(c, name, configs):
    from pybroker.codec import messages as m
    T = m.CreateTopicsRequest
    resp = c.request(19, 7, T(timeout_ms=10000, validate_only=False, topics=[T.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[],
        configs=[T.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])]))
    assert resp.topics[0].error_code == 0, resp.topics[0].error_message


def _produce(c, topic, batch, acks=1):
    from pybroker.codec import messages as m
    P = m.ProduceRequest
    resp = c.request(0, 9, P(acks=acks, timeout_ms=30000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.PartitionProduceData(index=0, records=batch)])]))
    assert resp.responses[0].partition_responses[0].error_code == 0


def _latencies(c, seconds=None, count=None, until=None):
    from pybroker.codec.records import build_batch
    out = []
    end = time.perf_counter() + seconds if seconds else None
    while True:
        batch = build_batch([(b"lat", b"x" * 100, [], None)])
        t0 = time.perf_counter()
        _produce(c, "lat", batch)
        out.append(time.perf_counter() - t0)
        if count and len(out) >= count:
            break
        if end and time.perf_counter() > end:
            break
        if until and until():
            break
    return out


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def _checkpoint(path, topic):
    if not path.exists():
        return -1
    for line in path.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) == 3 and parts[0] == topic:
            return int(parts[2])
    return -1


def latency_run(pure, mib, throttle=None):
    from pybroker.codec.records import iter_batches
    workdir = tempfile.mkdtemp(prefix="bench-latency-")
    proc, bootstrap = _serve(workdir, pure, throttle)
    try:
        c = _client(bootstrap)
        # filled under the delete policy (nothing to clean, nothing expires), then switched
        _create(c, "big", {"cleanup.policy": "delete", "internal.segment.bytes": str(4 * MIB)})
        _create(c, "lat", {})
        data, _ = make_batches(mib * MIB)
        for b in iter_batches(data):
            _produce(c, "big", bytes(b.raw))
        _produce(c, "big", bytes(next(iter_batches(make_batches(1)[0])).raw))
        idle = _latencies(c, count=1500)
        from pybroker.codec import messages as m
        R = m.IncrementalAlterConfigsRequest
        checkpoint = pathlib.Path(workdir) / "data" / "cleaner-offset-checkpoint"
        t0 = time.perf_counter()
        c.request(44, 1, R(resources=[R.AlterConfigsResource(resource_type=2, resource_name="big",
                  configs=[R.AlterableConfig(name="cleanup.policy", config_operation=0,
                                             value="compact")])], validate_only=False))
        busy = _latencies(c, seconds=120, until=lambda: _checkpoint(checkpoint, "big") > 0)
        dt = time.perf_counter() - t0
        c.close()
        return idle, busy, mib / dt if _checkpoint(checkpoint, "big") > 0 else float("nan")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def latency_table(mib):
    print(f"\n3. produce latency (ms) of a `pybroker serve` broker, idle and while its cleaner compacts "
          f"a {mib} MiB topic (compiled) / {max(1, mib // 8)} MiB (pure)")
    print("(@20M: log.cleaner.io.max.bytes.per.second = 20 MiB/s, read + write)")
    print(f"{'broker':<14}{'idle p50':>10}{'idle p99':>10}{'clean p50':>11}{'clean p99':>11}"
          f"{'p99 ratio':>11}{'samples':>9}{'cleaner MB/s':>14}")
    runs = (("compiled", False, mib, None), ("compiled", False, mib, 20 * MIB),
            ("pure", True, max(1, mib // 8), None))
    for name, pure, size, throttle in runs:
        idle, busy, rate = latency_run(pure, size, throttle)
        if throttle:
            name += f" @{throttle // MIB}M"
        ratio = _pct(busy, 99) / _pct(idle, 99)
        print(f"{name:<14}{_pct(idle, 50):>10.2f}{_pct(idle, 99):>10.2f}{_pct(busy, 50):>11.2f}"
              f"{_pct(busy, 99):>11.2f}{ratio:>10.2f}x{len(busy):>9}{rate:>14.1f}")


def retention_table():
    print("\n4. retention pass over 1,000 partitions (ms), disk, compiled")
    work = tempfile.mkdtemp(prefix="bench-retention-")
    try:
        mgr, now = make_partitions(work)
        t0 = time.perf_counter()
        assert mgr.cleanup_logs() == 0
        idle = (time.perf_counter() - t0) * 1000
        on_loop, unlinks = retention_pass_ms(mgr, now)
        print(f"{'nothing to delete':>18}{'2,000 segments: loop':>22}{'deferred unlinks':>18}")
        print(f"{idle:>18.1f}{on_loop:>22.1f}{unlinks:>18.1f}")
        mgr.shutdown_sync()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mib", type=int, default=32)
    p.add_argument("--skip-latency", action="store_true")
    args = p.parse_args()
    core_table(args.mib)
    disk_table(args.mib)
    if not args.skip_latency:
        latency_table(args.mib)
    retention_table()


if __name__ == "__main__":
    main()
