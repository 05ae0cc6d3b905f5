"""Kafka's own perf tools (kafka-producer-perf-test, kafka-consumer-perf-test) from the fetched
kafka-tools jar: command lines as bin/kafka-*-perf-test.sh would run them, and output parsers.

The JVM options are those of the scripts: ``-Xmx512M`` (their KAFKA_HEAP_OPTS) and
kafka-run-class.sh's performance options; log4j2 at WARN to stderr.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import tempfile
import time

import kafka_ref

PRODUCER_MAIN = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_MAIN = "org.apache.kafka.tools.ConsumerPerformance"
TOOL_HEAP = ["-Xmx512M"]

TOOLS_LOG4J2 = """\
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
"""


class ParseError(ValueError):
    """A perf tool's output did not hold the summary line it prints on success."""


def log4j_config() -> pathlib.Path:
    path = pathlib.Path(tempfile.gettempdir()) / "pybroker-bench-tools-log4j2.properties"
    if not path.is_file() or path.read_text() != TOOLS_LOG4J2:
        path.write_text(TOOLS_LOG4J2)
    return path


def tool_command(libs: pathlib.Path, main_class: str, args: list) -> list[str]:
    return kafka_ref.java_command(libs, main_class, [str(a) for a in args],
                                  jvm_opts=[*TOOL_HEAP, *kafka_ref.JVM_PERFORMANCE_OPTS],
                                  log4j_config=log4j_config())


def producer_args(bootstrap: str, topic: str, messages: int, size: int, props: dict,
                  warmup_records: int) -> list[str]:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--num-records", messages,
            "--record-size", size, "--throughput", -1, "--warmup-records", warmup_records,
            "--command-property", *(f"{k}={v}" for k, v in props.items())]
    return [str(a) for a in args]


def consumer_args(bootstrap: str, topic: str, messages: int, timeout_ms: int = 10000) -> list[str]:
    return [str(a) for a in ("--bootstrap-server", bootstrap, "--topic", topic,
                             "--num-records", messages, "--timeout", timeout_ms)]


# --- parsers -------------------------------------------------------------------------------------

# "100000 records sent, 25087.807326 records/sec (24.50 MB/sec), 606.87 ms avg latency,
#  895.00 ms max latency, 621 ms 50th, 821 ms 95th, 867 ms 99th, 886 ms 99.9th."
# and the same after "--warmup-records" with "N steady state records sent, ...".
_PRODUCER_LINE = re.compile(
    r"^(?P<records>\d+) (?P<steady>steady state )?records sent, (?P<rps>[\d.]+) records/sec "
    r"\((?P<mbps>[\d.]+) MB/sec\), (?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th\.",
    re.M)


def parse_producer(stdout: str) -> dict:
    """Summary lines of ProducerPerformance -> {"total": {...}, "steady": {...} or None}."""
    found = {}
    for m in _PRODUCER_LINE.finditer(stdout):
        found["steady" if m["steady"] else "total"] = {
            "messages": int(m["records"]), "msgs_per_s": float(m["rps"]), "mb_per_s": float(m["mbps"]),
            "ack_latency_avg_ms": float(m["avg"]), "ack_latency_max_ms": float(m["max"]),
            "ack_latency_p50_ms": int(m["p50"]), "ack_latency_p95_ms": int(m["p95"]),
            "ack_latency_p99_ms": int(m["p99"]), "ack_latency_p999_ms": int(m["p999"])}
    if "total" not in found:
        raise ParseError("no 'records sent' summary line in kafka-producer-perf-test output")
    found.setdefault("steady", None)
    return found


CONSUMER_HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                   "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
_CONSUMER_FIELDS = [f.strip() for f in CONSUMER_HEADER.split(",")]


def parse_consumer(stdout: str) -> dict:
    """The CSV line after ConsumerPerformance's header -> dict of its numeric columns.

    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    """
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == CONSUMER_HEADER and i + 1 < len(lines):
            values = [v.strip() for v in lines[i + 1].split(",")]
            if len(values) == len(_CONSUMER_FIELDS):
                row = dict(zip(_CONSUMER_FIELDS, values))
                return _consumer_numbers(row, timed_out="Exiting before consuming" in stdout)
    raise ParseError("no result line after the kafka-consumer-perf-test header")


def _consumer_numbers(row: dict, timed_out: bool) -> dict:
    num = {k: float(v) for k, v in row.items() if k not in ("start.time", "end.time")}
    return {"messages": int(num["data.consumed.in.nMsg"]), "mb": num["data.consumed.in.MB"],
            "msgs_per_s": num["nMsg.sec"], "mb_per_s": num["MB.sec"],
            "rebalance_ms": num["rebalance.time.ms"], "fetch_ms": num["fetch.time.ms"],
            "fetch_msgs_per_s": num["fetch.nMsg.sec"], "fetch_mb_per_s": num["fetch.MB.sec"],
            "timed_out": timed_out}


# --- running -------------------------------------------------------------------------------------

def run(cmd: list[str], timeout: float) -> dict:
    """Runs a tool to completion or timeout; returns its exit code, output and wall time."""
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        code, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        stdout = _text(exc.stdout)
        stderr = _text(exc.stderr) + f"\n[harness] killed after {timeout:.0f}s"
    return {"exit_code": code, "stdout": stdout, "stderr": stderr, "wall_seconds": time.monotonic() - t0}


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
