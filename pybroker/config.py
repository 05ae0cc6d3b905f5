"""Broker configuration with Kafka's key names, types, defaults and validation.

Sources, lowest precedence first: built-in defaults → a `server.properties` file → `--override`s.
Unknown keys are kept (and reported) rather than rejected, as Kafka does, so files written for
Kafka load unchanged; a known key with an invalid value is a ConfigError naming the key.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Optional


class ConfigError(ValueError):
    pass


def _bool(v):
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "false"):
        return s == "true"
    raise ValueError(f"expected true or false, got {v!r}")


def _list(v):
    if isinstance(v, (list, tuple)):
        return list(v)
    return [p.strip() for p in str(v).split(",") if p.strip()]


def _int(v):
    return int(str(v).strip())


def _float(v):
    return float(str(v).strip())


def _str(v):
    return str(v).strip()


@dataclass(frozen=True)
class ConfigKey:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str = ""
    at_least: Optional[float] = None
    choices: Optional[tuple] = None

    def validate(self, raw):
        try:
            value = self.parse(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid value {raw!r} for configuration {self.name}: {exc}") from None
        if self.at_least is not None and value is not None and value < self.at_least:
            raise ConfigError(f"Invalid value {raw!r} for configuration {self.name}: "
                              f"value must be at least {self.at_least:g}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"Invalid value {raw!r} for configuration {self.name}: "
                              f"must be one of {', '.join(map(str, self.choices))}")
        return value


DEFAULT_LOG_DIR = os.path.join(tempfile.gettempdir(), "pybroker-logs")

_KEYS = [
    ConfigKey("node.id", _int, 1, "this broker's id", at_least=0),
    ConfigKey("broker.id", _int, None, "alias of node.id"),
    ConfigKey("process.roles", _list, ["broker", "controller"], "KRaft roles of this process"),
    ConfigKey("cluster.id", _str, None, "cluster id (generated and stored in meta.properties if unset)"),
    ConfigKey("listeners", _list, ["PLAINTEXT://localhost:9092"], "listener URIs"),
    ConfigKey("advertised.listeners", _list, None, "what clients are told (default: listeners)"),
    ConfigKey("listener.security.protocol.map", _str,
              "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
    ConfigKey("log.dirs", _list, None, "data directories (default: log.dir)"),
    ConfigKey("log.dir", _str, DEFAULT_LOG_DIR, "data directory when log.dirs is unset"),
    ConfigKey("broker.rack", _str, None),
    ConfigKey("num.partitions", _int, 1, at_least=1),
    ConfigKey("default.replication.factor", _int, 1, at_least=1),
    ConfigKey("auto.create.topics.enable", _bool, True),
    ConfigKey("delete.topic.enable", _bool, True),
    ConfigKey("message.max.bytes", _int, 1048588, at_least=0),
    ConfigKey("socket.request.max.bytes", _int, 104857600, at_least=1),
    # Kafka's default is 102400 for both. A fixed SO_SNDBUF turns the kernel's buffer autotuning
    # off, and a 1 MiB fetch response then goes out in ~256 KiB pieces, each waiting for the client
    # to drain the last: librdkafka's 1-partition catch-up read measured 2.4x slower here
    # (bench/broker_ab.py --client rdkafka --fetch). So ours is -1 (the OS default, autotuned).
    # The receive side showed no difference in the same runs (produce 1.06x / 0.95x), so it stays.
    ConfigKey("socket.send.buffer.bytes", _int, -1,
              "SO_SNDBUF of accepted sockets; -1: the OS default, autotuned (Kafka: 102400)"),
    ConfigKey("socket.receive.buffer.bytes", _int, 102400,
              "SO_RCVBUF of accepted sockets; -1: the OS default"),
    ConfigKey("connections.max.idle.ms", _int, 600000, at_least=0),
    ConfigKey("queued.max.requests", _int, 500, at_least=1),
    ConfigKey("queued.max.request.bytes", _int, -1),
    ConfigKey("request.timeout.ms", _int, 30000, at_least=0),
    ConfigKey("log.segment.bytes", _int, 1073741824, at_least=14),
    ConfigKey("log.roll.ms", _int, None),
    ConfigKey("log.roll.hours", _int, 168, at_least=1),
    ConfigKey("log.index.size.max.bytes", _int, 10485760, at_least=4),
    ConfigKey("log.index.interval.bytes", _int, 4096, at_least=0),
    ConfigKey("log.retention.ms", _int, None),
    ConfigKey("log.retention.minutes", _int, None),
    ConfigKey("log.retention.hours", _int, 168),
    ConfigKey("log.retention.bytes", _int, -1),
    ConfigKey("log.flush.interval.messages", _int, 9223372036854775807, at_least=1),
    ConfigKey("log.flush.interval.ms", _int, None),
    ConfigKey("log.flush.offset.checkpoint.interval.ms", _int, 60000, at_least=0),
    ConfigKey("log.flush.start.offset.checkpoint.interval.ms", _int, 60000, at_least=0),
    ConfigKey("log.message.timestamp.type", _str, "CreateTime",
              choices=("CreateTime", "LogAppendTime")),
    ConfigKey("log.message.timestamp.before.max.ms", _int, 9223372036854775807, at_least=0),
    ConfigKey("log.message.timestamp.after.max.ms", _int, 3600000, at_least=0),
    ConfigKey("log.cleanup.policy", _list, ["delete"]),
    # log lifecycle (retention, cleaner, policies): defaults of the topic configs and the
    # background tasks' schedules; the dynamic ones are listed in pybroker/dynamic_config.py
    ConfigKey("log.roll.jitter.ms", _int, None),
    ConfigKey("log.roll.jitter.hours", _int, 0, at_least=0),
    ConfigKey("log.segment.delete.delay.ms", _int, 60000, at_least=0),
    ConfigKey("log.preallocate", _bool, False),
    ConfigKey("log.retention.check.interval.ms", _int, 300000, at_least=1),
    ConfigKey("log.initial.task.delay.ms", _int, 30000, at_least=0),
    ConfigKey("log.local.retention.ms", _int, -2, at_least=-2),
    ConfigKey("log.local.retention.bytes", _int, -2, at_least=-2),
    ConfigKey("log.cleaner.enable", _bool, True),
    ConfigKey("log.cleaner.threads", _int, 1, at_least=0),
    ConfigKey("log.cleaner.io.max.bytes.per.second", _float, 1.7976931348623157e308, at_least=0),
    ConfigKey("log.cleaner.dedupe.buffer.size", _int, 134217728, at_least=1 << 20),
    ConfigKey("log.cleaner.io.buffer.size", _int, 524288, at_least=0),
    ConfigKey("log.cleaner.io.buffer.load.factor", _float, 0.9),
    ConfigKey("log.cleaner.backoff.ms", _int, 15000, at_least=0),
    ConfigKey("log.cleaner.delete.retention.ms", _int, 86400000, at_least=0),
    ConfigKey("log.cleaner.min.compaction.lag.ms", _int, 0, at_least=0),
    ConfigKey("log.cleaner.max.compaction.lag.ms", _int, 9223372036854775807, at_least=1),
    ConfigKey("log.cleaner.min.cleanable.ratio", _float, 0.5, at_least=0),
    ConfigKey("compression.gzip.level", _int, -1, at_least=-1),
    ConfigKey("compression.lz4.level", _int, 9, at_least=1),
    ConfigKey("compression.zstd.level", _int, 3, at_least=-131072),
    ConfigKey("min.insync.replicas", _int, 1, at_least=1),
    ConfigKey("unclean.leader.election.enable", _bool, False),
    ConfigKey("max.decompressed.message.bytes", _int, 2147483639, at_least=0),
    ConfigKey("compression.type", _str, "producer",
              choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    ConfigKey("offsets.topic.num.partitions", _int, 50, at_least=1),
    ConfigKey("offsets.topic.replication.factor", _int, 1, at_least=1),
    ConfigKey("transaction.state.log.num.partitions", _int, 50, at_least=1),
    ConfigKey("fetch.max.bytes", _int, 57671680, at_least=0),
    ConfigKey("max.incremental.fetch.session.cache.slots", _int, 1000, at_least=0),
    ConfigKey("group.initial.rebalance.delay.ms", _int, 3000, at_least=0),
    ConfigKey("group.min.session.timeout.ms", _int, 6000, at_least=0),
    ConfigKey("group.max.session.timeout.ms", _int, 1800000, at_least=0),
    ConfigKey("group.max.size", _int, 2147483647, at_least=1),
    ConfigKey("group.consumer.session.timeout.ms", _int, 45000, at_least=1),
    ConfigKey("group.consumer.heartbeat.interval.ms", _int, 5000, at_least=1),
    ConfigKey("group.consumer.max.size", _int, 2147483647, at_least=1),
    ConfigKey("group.consumer.assignors", _list, ["uniform", "range"]),
    ConfigKey("group.consumer.migration.policy", _str, "bidirectional",
              choices=("disabled", "upgrade", "downgrade", "bidirectional")),
    ConfigKey("offsets.retention.minutes", _int, 10080, at_least=1),
    ConfigKey("offsets.retention.check.interval.ms", _int, 600000, at_least=1),
    ConfigKey("offset.metadata.max.bytes", _int, 4096, at_least=0),
    ConfigKey("producer.id.expiration.ms", _int, 86400000, at_least=1),
    ConfigKey("unstable.api.versions.enable", _bool, False),
    ConfigKey("storage.type", _str, "disk", "pybroker: 'disk' or 'memory'", choices=("disk", "memory")),
    ConfigKey("log.writer", _str, "uring",
              "pybroker: segment writes via io_uring (threads where unavailable), threads, or "
              "inline syscalls", choices=("uring", "thread", "sync")),
    ConfigKey("socket.sendfile.enable", _bool, True,
              "pybroker: send fetched file regions with sendfile on plaintext connections"),
    ConfigKey("shutdown.timeout.ms", _int, 10000, "pybroker: grace period for in-flight requests"),
]
KEYS = {k.name: k for k in _KEYS}


def parse_properties(text: str) -> dict:
    """Parse Java .properties text (`key=value`, `key: value`, `#`/`!` comments, `\\` continuations)."""
    out = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        m = re.match(r"((?:\\.|[^=:\s])+)\s*[=:\s]\s*(.*)$", line)
        if m:
            key, value = m.group(1), m.group(2)
        else:
            key, value = line, ""
        out[_unescape(key)] = _unescape(value.rstrip())
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), s)


class BrokerConfig:
    """Validated broker configuration. `cfg["log.segment.bytes"]` or `cfg.get(name)`."""

    def __init__(self, values: Optional[dict] = None):
        self.raw = dict(values or {})
        self.values = {}
        self.unknown = sorted(k for k in self.raw if k not in KEYS)
        for name, key in KEYS.items():
            self.values[name] = key.validate(self.raw[name]) if name in self.raw else key.default
        if self.raw.get("broker.id") is not None and "node.id" not in self.raw:
            self.values["node.id"] = self.values["broker.id"]
        self._check()

    @classmethod
    def load(cls, path: Optional[str] = None, overrides=()) -> "BrokerConfig":
        values = {}
        if path:
            try:
                with open(path, encoding="utf-8") as fh:
                    values.update(parse_properties(fh.read()))
            except OSError as exc:
                raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--override expects KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            values[k.strip()] = v
        return cls(values)

    def _check(self):
        for uri in self.listeners + (self.advertised_listeners or []):
            parse_listener(uri)

    def __getitem__(self, name):
        return self.values[name]

    def get(self, name, default=None):
        return self.values.get(name, default)

    @property
    def node_id(self) -> int:
        return self.values["node.id"]

    @property
    def listeners(self) -> list:
        return self.values["listeners"]

    @property
    def advertised_listeners(self) -> Optional[list]:
        return self.values["advertised.listeners"]

    @property
    def log_dirs(self) -> list:
        return self.values["log.dirs"] or [self.values["log.dir"]]

    @property
    def log_roll_ms(self) -> int:
        v = self.values["log.roll.ms"]
        return v if v is not None else self.values["log.roll.hours"] * 3600000

    @property
    def log_retention_ms(self) -> int:
        if self.values["log.retention.ms"] is not None:
            return self.values["log.retention.ms"]
        if self.values["log.retention.minutes"] is not None:
            return self.values["log.retention.minutes"] * 60000
        return self.values["log.retention.hours"] * 3600000


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int


def parse_listener(uri: str) -> Listener:
    """'PLAINTEXT://host:9092' → Listener('PLAINTEXT', 'host', 9092); empty host = all interfaces."""
    m = re.match(r"^([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:/]*):(\d+)$", uri.strip())
    if not m:
        raise ConfigError(f"Invalid listener {uri!r}: expected NAME://host:port")
    host = m.group(2).strip("[]")
    port = int(m.group(3))
    if not 0 <= port <= 65535:
        raise ConfigError(f"Invalid listener {uri!r}: port out of range")
    return Listener(m.group(1).upper(), host, port)
