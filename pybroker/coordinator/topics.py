"""Where group coordination lives, and what the coordinator reads of the broker's topics.

`partition_for(group_id, n)` is Kafka's `Utils.abs(groupId.hashCode()) % n`: Java's String.hashCode
over UTF-16 code units with 32-bit wraparound, and Utils.abs mapping Integer.MIN_VALUE to 0. The
group's coordinator is the leader of that partition of `__consumer_offsets`, so a client of any
language finds the same broker Kafka would name.

`TopicSource` is the small read-only view of topic metadata the coordinator needs (consumer-group
subscriptions, commit validation). `MetadataTopics` adapts the broker's MetadataStore
(`.topics` name -> TopicInfo, `.by_id` id -> TopicInfo, TopicInfo with name/topic_id/partitions).
"""
from __future__ import annotations

from typing import Iterable, Optional, Protocol

OFFSETS_TOPIC = "__consumer_offsets"
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def java_string_hash(s: str) -> int:
    """Java's String.hashCode(): s[0]*31^(n-1) + ... + s[n-1] over UTF-16 code units, as int32."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def java_abs(n: int) -> int:
    """Kafka's Utils.abs: |n|, and 0 for Integer.MIN_VALUE."""
    return 0 if n == -(1 << 31) else abs(n)


def partition_for(group_id: str, num_partitions: int) -> int:
    return java_abs(java_string_hash(group_id)) % num_partitions


class TopicMeta(Protocol):
    name: str
    topic_id: bytes
    partitions: int


class TopicSource(Protocol):
    def topic(self, name: str) -> Optional[TopicMeta]: ...
    def topic_by_id(self, topic_id: bytes) -> Optional[TopicMeta]: ...
    def names(self) -> Iterable[str]: ...


class MetadataTopics:
    """TopicSource over pybroker.metadata.store.MetadataStore (or anything with .topics/.by_id)."""

    def __init__(self, store):
        self.store = store

    def topic(self, name):
        return self.store.topics.get(name)

    def topic_by_id(self, topic_id):
        return self.store.by_id.get(topic_id)

    def names(self):
        return self.store.topics.keys()


class StaticTopics:
    """A TopicSource from a dict name -> (topic_id, partitions); for tests and tools."""

    class _Topic:
        __slots__ = ("name", "topic_id", "partitions")

        def __init__(self, name, topic_id, partitions):
            self.name, self.topic_id, self.partitions = name, topic_id, partitions

    def __init__(self, topics: dict | None = None):
        self._by_name = {}
        self._by_id = {}
        for name, (tid, n) in (topics or {}).items():
            self.add(name, tid, n)

    def add(self, name, topic_id, partitions):
        t = self._Topic(name, topic_id, partitions)
        self._by_name[name] = t
        self._by_id[topic_id] = t
        return t

    def remove(self, name):
        t = self._by_name.pop(name)
        self._by_id.pop(t.topic_id, None)

    def topic(self, name):
        return self._by_name.get(name)

    def topic_by_id(self, topic_id):
        return self._by_id.get(topic_id)

    def names(self):
        return self._by_name.keys()
