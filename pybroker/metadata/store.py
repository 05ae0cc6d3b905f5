"""The metadata image and the local metadata record log behind it.

Log file format (`<log.dir>/__pybroker_metadata/records.log`): one JSON object per line,
`{"type": "TopicRecord", ...}`; a line is committed once its trailing newline is fsynced, so a
torn last line after a crash is ignored and truncated on open.
"""
from __future__ import annotations

import base64
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Optional

LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_NAME = 249
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4


class TopicError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def validate_topic_name(name: str) -> None:
    """Kafka's Topic.validate: INVALID_TOPIC_EXCEPTION (17) for an illegal name."""
    if not name:
        raise TopicError(17, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise TopicError(17, "Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_TOPIC_NAME:
        raise TopicError(17, f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME} characters")
    if not LEGAL_TOPIC.match(name):
        raise TopicError(17, f"Topic name \"{name}\" is illegal, it contains a character other than "
                             "ASCII alphanumerics, '.', '_' and '-'")


def topic_id_to_str(tid: bytes) -> str:
    """Kafka's Uuid.toString: URL-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(tid).decode().rstrip("=")


def topic_id_from_str(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "==")


def new_topic_id() -> bytes:
    """A random v4 UUID that is neither zero nor Kafka's reserved METADATA_TOPIC_ID-like values
    and whose string form does not start with '-' (Kafka avoids those for CLI friendliness)."""
    while True:
        tid = uuid.uuid4().bytes
        if topic_id_to_str(tid)[0] != "-":
            return tid


@dataclass
class TopicInfo:
    name: str
    topic_id: bytes
    partitions: int
    configs: dict = field(default_factory=dict)

    @property
    def internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


class MetadataStore:
    """Topics and their configs; every change is a record appended to the metadata log."""

    def __init__(self, directory: Optional[str]):
        self.directory = directory
        self.topics: dict = {}
        self.by_id: dict = {}
        self.cluster_id: Optional[str] = None
        self.broker_configs: dict = {}  # "" (cluster default) | "<node id>" -> {key: value}
        self._fh = None
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
            self._load(os.path.join(directory, "records.log"))

    # -- persistence ----------------------------------------------------------------------
    def _load(self, path):
        good = 0
        if os.path.exists(path):
            with open(path, "rb") as fh:
                data = fh.read()
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break
                try:
                    rec = json.loads(line)
                except ValueError:
                    break
                self._apply(rec)
                good += len(line)
            if good != len(data):
                with open(path, "r+b") as fh:
                    fh.truncate(good)
        self._fh = open(path, "ab")

    def _append(self, *records):
        for rec in records:
            self._apply(rec)
        if self._fh is not None:
            self._fh.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n"
                                    for r in records))
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # -- state machine ----------------------------------------------------------------------
    def _apply(self, rec):
        kind = rec["type"]
        if kind == "TopicRecord":
            t = TopicInfo(rec["name"], topic_id_from_str(rec["topicId"]), 0, {})
            self.topics[t.name] = t
            self.by_id[t.topic_id] = t
        elif kind == "PartitionRecord":
            t = self.by_id[topic_id_from_str(rec["topicId"])]
            t.partitions = max(t.partitions, rec["partitionId"] + 1)
        elif kind == "ConfigRecord" and rec.get("resourceType", TOPIC_RESOURCE) == BROKER_RESOURCE:
            scope = self.broker_configs.setdefault(rec["resourceName"], {})
            if rec.get("value") is None:
                scope.pop(rec["name"], None)
            else:
                scope[rec["name"]] = rec["value"]
        elif kind == "ConfigRecord":
            t = self.topics[rec["resourceName"]]
            if rec.get("value") is None:
                t.configs.pop(rec["name"], None)
            else:
                t.configs[rec["name"]] = rec["value"]
        elif kind == "RemoveTopicRecord":
            t = self.by_id.pop(topic_id_from_str(rec["topicId"]))
            self.topics.pop(t.name, None)
        else:
            raise ValueError(f"unknown metadata record {kind}")

    # -- commands ---------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int, configs: dict, topic_id: bytes = None) -> TopicInfo:
        tid = topic_id or new_topic_id()
        sid = topic_id_to_str(tid)
        recs = [{"type": "TopicRecord", "name": name, "topicId": sid}]
        recs += [{"type": "PartitionRecord", "topicId": sid, "partitionId": p,
                  "replicas": [], "leader": -1} for p in range(partitions)]
        recs += [{"type": "ConfigRecord", "resourceType": 2, "resourceName": name,
                  "name": k, "value": v} for k, v in sorted(configs.items())]
        self._append(*recs)
        return self.topics[name]

    def add_partitions(self, name: str, total: int) -> None:
        t = self.topics[name]
        sid = topic_id_to_str(t.topic_id)
        self._append(*[{"type": "PartitionRecord", "topicId": sid, "partitionId": p,
                        "replicas": [], "leader": -1} for p in range(t.partitions, total)])

    def set_topic_config(self, name: str, key: str, value: Optional[str]) -> None:
        self._append({"type": "ConfigRecord", "resourceType": 2, "resourceName": name,
                      "name": key, "value": value})

    def set_configs(self, resource_type: int, resource_name: str, changes: dict) -> None:
        """Several ConfigRecords in one append (value None removes the key): topic (2) or
        broker (4; resource name "" is the cluster-wide default)."""
        self._append(*[{"type": "ConfigRecord", "resourceType": resource_type,
                        "resourceName": resource_name, "name": k, "value": v}
                       for k, v in sorted(changes.items())])

    def delete_topic(self, name: str) -> TopicInfo:
        t = self.topics[name]
        self._append({"type": "RemoveTopicRecord", "topicId": topic_id_to_str(t.topic_id)})
        return t

    def colliding_topic(self, name: str) -> Optional[str]:
        """Kafka rejects a name that equals an existing one after mapping '.' to '_'."""
        key = name.replace(".", "_")
        for other in self.topics:
            if other != name and other.replace(".", "_") == key:
                return other
        return None
