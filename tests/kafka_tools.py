"""Helpers for tests that use real Apache Kafka: find the jars, run Kafka's CLI tools, start a
reference broker. The jars are fetched by ci/fetch_kafka; when they (or java) are missing, every
helper here skips the calling test instead of failing it.

    from tests.kafka_tools import run_tool, kafka_reference
    out = run_tool("kafka-topics", "--bootstrap-server", bs, "--list")
    out.stdout

Tools run as ``java -cp <libs>/* <main class> args`` (what bin/kafka-*.sh do), logging WARN+ to
stderr.
"""
from __future__ import annotations

import functools
import importlib.util
import pathlib
import subprocess
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# bin/<script>.sh name -> main class, Kafka 4.x.
TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-e2e-latency": "org.apache.kafka.tools.EndToEndLatency",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-groups": "org.apache.kafka.tools.GroupsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-verifiable-producer": "org.apache.kafka.tools.VerifiableProducer",
    "kafka-verifiable-consumer": "org.apache.kafka.tools.VerifiableConsumer",
    "kafka-storage": "kafka.tools.StorageTool",
}

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


@functools.lru_cache(maxsize=None)
def kafka_ref():
    """bench/kafka_ref.py as a module (it is a script directory, not a package)."""
    path = REPO / "bench" / "kafka_ref.py"
    spec = importlib.util.spec_from_file_location("kafka_ref", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kafka_ref", module)
    spec.loader.exec_module(module)
    return sys.modules["kafka_ref"]


def libs() -> pathlib.Path:
    """The Kafka jars directory; skips the test when Kafka or java is not installed."""
    ref = kafka_ref()
    try:
        return ref.require_libs()
    except ref.KafkaNotAvailable as exc:
        pytest.skip(str(exc))


def kafka_version() -> str:
    return kafka_ref().kafka_version(libs())


@functools.lru_cache(maxsize=None)
def _tools_log4j() -> str:
    path = pathlib.Path(tempfile.gettempdir()) / "pybroker-kafka-tools-log4j2.properties"
    if not path.is_file() or path.read_text() != TOOLS_LOG4J2:
        path.write_text(TOOLS_LOG4J2)
    return str(path)


def tool_command(tool: str, *args: str, jvm_opts=("-Xmx512M",)) -> list:
    """argv running a Kafka CLI tool, by script name (``kafka-topics``) or main class."""
    main_class = TOOLS.get(tool, tool)
    return kafka_ref().java_command(libs(), main_class, [str(a) for a in args],
                                    jvm_opts=list(jvm_opts), log4j_config=_tools_log4j())


def run_tool(tool: str, *args: str, input: str | bytes | None = None, timeout: float = 120,
             check: bool = True) -> subprocess.CompletedProcess:
    """Runs a Kafka CLI tool to completion and returns its CompletedProcess (text stdout/stderr).

    check=True raises AssertionError carrying stdout/stderr on a non-zero exit.
    """
    text = not isinstance(input, bytes)
    out = subprocess.run(tool_command(tool, *args), input=input, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=timeout, text=text)
    if check and out.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(map(str, args))} exited {out.returncode}\n"
                             f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}")
    return out


def start_tool(tool: str, *args: str, **popen_kwargs) -> subprocess.Popen:
    """Starts a long-running tool (e.g. a console consumer); the caller stops it."""
    popen_kwargs.setdefault("stdout", subprocess.PIPE)
    popen_kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(tool_command(tool, *args), **popen_kwargs)


def kafka_reference(**kwargs):
    """A bench/kafka_ref.KafkaReference (not started; use it as a context manager); skips the
    test when the jars are missing."""
    return kafka_ref().KafkaReference(libs=libs(), **kwargs)
