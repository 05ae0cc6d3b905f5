"""Profiles, cells and the runner: every workload of every cell against one target at a time.

A cell is (message size, partitions, acks, compression); producers always use linger.ms=5 and
batch.size=1048576. Per cell and target the workloads run in this order, each on a fresh topic
(created with the cell's partition count, replication factor 1, deleted after the cell):

  java_produce   kafka-producer-perf-test  --num-records N --record-size S --throughput -1
                 --warmup-records N/10 (steady-state line reported next to the whole-run line)
  java_consume   kafka-consumer-perf-test  --num-records N on java_produce's topic (group member)
  rd_produce     rdkafka_driver.py produce N messages
  rd_consume     rdkafka_driver.py consume the N messages rd_produce wrote (assign, no group)
  latency        rdkafka_driver.py latency at a fixed rate for D seconds (first second excluded)

N = min(max_messages, byte_budget // S), identical for both targets. Around each workload the
broker's process tree is sampled (CPU seconds used, peak summed VmRSS).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import shlex
import subprocess
import sys
import time

from e2e import java_perf, procstat, rdkafka_driver
from e2e.targets import TargetStartError

DRIVER = pathlib.Path(rdkafka_driver.__file__).resolve()
WORKLOADS = ("java_produce", "java_consume", "rd_produce", "rd_consume", "latency")


@dataclasses.dataclass(frozen=True)
class Cell:
    size: int
    partitions: int
    acks: str
    compression: str
    latency: bool = True

    @property
    def id(self) -> str:
        return f"{self.size}B-{self.partitions}p-acks{self.acks}-{self.compression}"

    def producer_props(self) -> dict:
        return {"acks": self.acks, "compression.type": self.compression,
                "linger.ms": 5, "batch.size": 1048576}


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    cells: tuple
    byte_budget: int          # per throughput run
    max_messages: int         # per throughput run
    time_limit: float         # seconds, per throughput run (the tool is killed after 2x + 60)
    latency_seconds: float    # sending time of a latency run
    warmup_messages: int      # broker warm-up before the first cell (1 KiB, librdkafka)
    workloads: tuple = WORKLOADS  # run_matrix.py --workloads narrows it

    def messages(self, cell: Cell) -> int:
        return max(1, min(self.max_messages, self.byte_budget // cell.size))


def quick_profile() -> Profile:
    cells = (Cell(1024, 1, "1", "none"), Cell(1024, 16, "1", "none"),
             Cell(100, 16, "1", "none", latency=False), Cell(10240, 16, "1", "none", latency=False),
             Cell(1024, 16, "all", "lz4", latency=False))
    # 1 GiB per run keeps every librdkafka run of the faster broker past a second at 1 KiB
    # (at 64 MiB they took ~0.1 s and mostly measured connection set-up and queue bursts).
    return Profile("quick", cells, byte_budget=1 << 30, max_messages=2_000_000, time_limit=60,
                   latency_seconds=5, warmup_messages=100_000)


def full_profile() -> Profile:
    cells = tuple(Cell(size, parts, acks, comp)
                  for size in (100, 1024, 10240) for parts in (1, 16, 256)
                  for acks in ("1", "all") for comp in ("none", "lz4"))
    return Profile("full", cells, byte_budget=1 << 30, max_messages=3_000_000, time_limit=120,
                   latency_seconds=8, warmup_messages=100_000)


PROFILES = {"quick": quick_profile, "full": full_profile}


# --- one workload --------------------------------------------------------------------------------

def sampled(target, fn) -> dict:
    """Runs fn() while sampling the broker; merges the broker's figures into fn's result."""
    with procstat.TreeSampler(target.pid) as sampler:
        result = fn()
    result["broker"] = sampler.as_dict()
    result["broker_alive"] = target.alive()
    return result


def run_driver(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(DRIVER), *map(str, args)]
    result = {"command": shlex.join(cmd)}
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {**result, "ok": False, "error": f"killed after {timeout:.0f}s"}
    if out.returncode != 0 or not out.stdout.strip():
        return {**result, "ok": False, "error": tail(out.stderr or out.stdout)}
    data = json.loads(out.stdout.strip().splitlines()[-1])
    ok = not data.get("timed_out") and not data.get("errors")
    error = None if ok else (data.get("first_error") or "incomplete run (see counts)")
    return {**result, **data, "ok": ok, "error": error}


def run_java(cmd: list[str], parse, timeout: float) -> dict:
    out = java_perf.run(cmd, timeout)
    result = {"command": shlex.join(cmd), "wall_seconds": round(out["wall_seconds"], 3)}
    try:
        parsed = parse(out["stdout"])
    except java_perf.ParseError as exc:
        return {**result, "ok": False, "exit_code": out["exit_code"],
                "error": f"{exc}; exit {out['exit_code']}\n{tail(out['stderr'] or out['stdout'])}"}
    ok = out["exit_code"] == 0 and not _timed_out(parsed)
    return {**result, **parsed, "ok": ok, "exit_code": out["exit_code"],
            "error": None if ok else tail(out["stderr"] or out["stdout"])}


def _timed_out(parsed: dict) -> bool:
    return bool(parsed.get("timed_out"))


def tail(text: str, lines: int = 12) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


# --- one cell ------------------------------------------------------------------------------------

class CellRunner:
    """Runs the workloads of one cell against one started target."""

    def __init__(self, target, profile: Profile, cell: Cell, libs, rate_for):
        self.target, self.profile, self.cell, self.libs = target, profile, cell, libs
        self.n = profile.messages(cell)
        self.rate_for = rate_for  # (cell, this cell's results so far) -> (msgs/s, how it was chosen)
        self.results: dict = {}
        self.kill_after = profile.time_limit * 2 + 60

    def topic(self, workload: str) -> str:
        return f"bench-{self.cell.id}-{workload}".replace("_", "-")

    def run(self) -> dict:
        results = self.results = {"messages": self.n}
        wanted = self.profile.workloads
        topics = ([self.topic("java")] if {"java_produce", "java_consume"} & set(wanted) else []) \
            + ([self.topic("rd")] if {"rd_produce", "rd_consume"} & set(wanted) else []) \
            + ([self.topic("latency")] if self.cell.latency and "latency" in wanted else [])
        for topic in topics:
            results.setdefault("topic_create_seconds", {})[topic] = round(
                rdkafka_driver.create_topic(self.target.bootstrap, topic, self.cell.partitions), 3)
        for name in wanted:
            if name == "latency" and not self.cell.latency:
                continue
            if not self.target.alive():
                results[name] = {"ok": False, "error": "broker process is not running"}
                continue
            results[name] = sampled(self.target, getattr(self, name))
            log(f"  {self.target.name} {self.cell.id} {name}: {summary(name, results[name])}")
        self.delete(topics, results)
        return results

    def delete(self, topics, results) -> None:
        for topic in topics:
            try:
                rdkafka_driver.delete_topic(self.target.bootstrap, topic)
            except Exception as exc:  # noqa: BLE001 - reported, the next cell uses new topics
                results.setdefault("cleanup_errors", []).append(f"{topic}: {exc}")

    def java_produce(self) -> dict:
        args = java_perf.producer_args(self.target.bootstrap, self.topic("java"), self.n, self.cell.size,
                                       self.cell.producer_props(), warmup_records=self.n // 10)
        cmd = java_perf.tool_command(self.libs, java_perf.PRODUCER_MAIN, args)
        return run_java(cmd, java_perf.parse_producer, self.kill_after)

    def java_consume(self) -> dict:
        args = java_perf.consumer_args(self.target.bootstrap, self.topic("java"), self.n)
        cmd = java_perf.tool_command(self.libs, java_perf.CONSUMER_MAIN, args)
        return run_java(cmd, java_perf.parse_consumer, self.kill_after)

    def rd_produce(self) -> dict:
        c = self.cell
        return run_driver(["produce", "--bootstrap", self.target.bootstrap, "--topic", self.topic("rd"),
                           "--messages", self.n, "--size", c.size, "--acks", c.acks,
                           "--compression", c.compression, "--linger-ms", 5, "--batch-size", 1048576,
                           "--time-limit", self.profile.time_limit], self.kill_after)

    def rd_consume(self) -> dict:
        return run_driver(["consume", "--bootstrap", self.target.bootstrap, "--topic", self.topic("rd"),
                           "--messages", self.n, "--size", self.cell.size,
                           "--time-limit", self.profile.time_limit], self.kill_after)

    def latency(self) -> dict:
        c, seconds = self.cell, self.profile.latency_seconds
        rate, basis = self.rate_for(c, self.results)
        result = run_driver(["latency", "--bootstrap", self.target.bootstrap, "--topic", self.topic("latency"),
                             "--size", c.size, "--acks", c.acks, "--compression", c.compression,
                             "--linger-ms", 5, "--batch-size", 1048576, "--rate", round(rate),
                             "--duration", seconds, "--warmup", 1.0], seconds * 3 + 90)
        result["rate_basis"] = basis
        return result


def summary(name: str, r: dict) -> str:
    if not r.get("ok"):
        return "FAILED: " + (r.get("error") or "?").splitlines()[0][:200]
    cpu = r["broker"]["cpu_seconds"]
    if name == "java_produce":
        s = r["steady"] or r["total"]
        return f"{s['msgs_per_s']:.0f} msg/s, {s['mb_per_s']:.1f} MB/s, broker cpu {cpu:.1f}s"
    if name == "java_consume":
        return f"{r['fetch_msgs_per_s']:.0f} msg/s (fetch), broker cpu {cpu:.1f}s"
    if name == "latency":
        return (f"{r['achieved_rate']:.0f}/{r['target_rate']:.0f} msg/s, p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms, p99.9 {r['p999_ms']:.2f} ms")
    return f"{r['msgs_per_s']:.0f} msg/s, {r['mb_per_s']:.1f} MB/s, broker cpu {cpu:.1f}s"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- one target ----------------------------------------------------------------------------------

def warm_up(target, profile: Profile) -> dict:
    """Unmeasured warm-up of a fresh broker: librdkafka writes and reads back warmup_messages
    1 KiB messages on a 16-partition topic, which is then deleted."""
    topic = "bench-warmup"
    rdkafka_driver.create_topic(target.bootstrap, topic, 16)
    common = ["--bootstrap", target.bootstrap, "--topic", topic, "--messages", profile.warmup_messages,
              "--size", 1024, "--time-limit", 60]
    produced = run_driver(["produce", *common], 120)
    consumed = run_driver(["consume", *common], 120)
    rdkafka_driver.delete_topic(target.bootstrap, topic)
    return {"messages": profile.warmup_messages, "size": 1024, "partitions": 16,
            "produce_ok": produced["ok"], "consume_ok": consumed["ok"],
            "error": produced.get("error") or consumed.get("error")}


def run_target(target, profile: Profile, libs, rate_for) -> dict:
    """Starts target, warms it up, runs every cell, stops it. rate_for: see CellRunner."""
    out = {"cells": {}}
    log(f"{target.name}: starting")
    try:
        target.start()
    except TargetStartError as exc:
        return {**out, "error": f"start failed: {exc}"}
    try:
        out.update(target.describe())
        time.sleep(1.0)
        out["idle_rss_bytes"] = procstat.tree_rss_bytes(procstat.descendants(target.pid))
        log(f"{target.name}: up in {target.startup_seconds:.3f}s; idle RSS {out['idle_rss_bytes'] >> 20} MiB")
        run_cells(target, profile, libs, rate_for, out)
        out["peak_rss_hwm_bytes"] = procstat.status_kib(target.pid, "VmHWM") * 1024
        out["total_cpu_seconds"] = round(procstat.tree_cpu_seconds(target.pid), 2)
    except Exception as exc:  # noqa: BLE001 - the report says what broke, with the broker's log
        out["error"] = f"{type(exc).__name__}: {exc}\n{target.log_tail()}"
        log(f"{target.name}: {out['error']}")
    finally:
        rdkafka_driver.forget_admin(target.bootstrap)
        target.stop()
        out["broker_log_tail"] = target.final_log
        out["exit_code"], out["shutdown_seconds"] = target.exit_code, target.shutdown_seconds
    return out


def run_cells(target, profile, libs, rate_for, out) -> None:
    out["warmup"] = warm_up(target, profile)
    for cell in profile.cells:
        if not target.alive():
            out["cells"][cell.id] = {"error": "broker process is not running"}
            continue
        try:
            runner = CellRunner(target, profile, cell, libs, rate_for)
            out["cells"][cell.id] = runner.run()
        except Exception as exc:  # noqa: BLE001 - one broken cell must not hide the others
            out["cells"][cell.id] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"  {target.name} {cell.id}: {out['cells'][cell.id]['error']}")
