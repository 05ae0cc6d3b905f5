"""Committed offsets of one coordinator shard: OffsetCommit, OffsetFetch, OffsetDelete, expiry
(Kafka's OffsetMetadataManager, with KafkaApis' topic checks).

Offsets are kept per group -> topic name -> partition. A commit is validated (topics must exist:
UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID; then the group: generation or member epoch,
member id, rebalance state; metadata no longer than `offset.metadata.max.bytes`, counted in
UTF-16 units as Java's String.length), written as OffsetCommit records, and becomes visible once
written. A commit with generation -1 to an unknown group creates a "simple" group (an Empty
classic group without protocol type) that only holds offsets. Expiry runs every
`offsets.retention.check.interval.ms`: an offset of a topic the group does not subscribe to is
removed `offsets.retention.minutes` after the group became Empty (classic) or after its commit
(simple groups, consumer groups), or at its explicit expire timestamp (OffsetCommit v2-v4
retention). A group left Empty with no offsets is then deleted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pybroker.codec.messages import ZERO_UUID, OffsetCommitResponse, OffsetDeleteResponse, \
    OffsetFetchResponse
from pybroker.coordinator import records as rec
from pybroker.coordinator.errors import (GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC,
                                         ILLEGAL_GENERATION, OFFSET_METADATA_TOO_LARGE,
                                         UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION, GroupError,
                                         append_error_code)

GROUP_ID_NOT_FOUND_VERSION = 9   # OffsetCommit v9+: GROUP_ID_NOT_FOUND instead of ILLEGAL_GENERATION
TOPIC_ID_VERSION = 10            # OffsetCommit / OffsetFetch v10+: topics by id
OCR = OffsetCommitResponse
OFR = OffsetFetchResponse
ODR = OffsetDeleteResponse


@dataclass
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = 0
    expire_timestamp_ms: Optional[int] = None


def utf16_length(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


class OffsetManager:
    def __init__(self, shard):
        self.shard = shard
        self.offsets = {}   # group id -> topic -> partition -> OffsetAndMetadata

    # --- state -------------------------------------------------------------------------------
    def get(self, group_id, topic, partition) -> Optional[OffsetAndMetadata]:
        return self.offsets.get(group_id, {}).get(topic, {}).get(partition)

    def put(self, group_id, topic, partition, oam) -> None:
        self.offsets.setdefault(group_id, {}).setdefault(topic, {})[partition] = oam

    def remove(self, group_id, topic, partition) -> None:
        topics = self.offsets.get(group_id)
        if topics is None or topic not in topics:
            return
        topics[topic].pop(partition, None)
        if not topics[topic]:
            del topics[topic]
        if not topics:
            del self.offsets[group_id]

    def has_offsets(self, group_id) -> bool:
        return group_id in self.offsets

    def replay(self, key, value) -> None:
        if value is None:
            self.remove(key.group, key.topic, key.partition)
            return
        self.shard.ensure_group_for_offsets(key.group)
        expire = value.expire_timestamp if value.expire_timestamp != -1 else None
        self.put(key.group, key.topic, key.partition, OffsetAndMetadata(
            value.offset, value.leader_epoch, value.metadata, value.commit_timestamp, expire))

    def apply(self, records) -> None:
        """Make written OffsetCommit records (and tombstones) visible."""
        for r in records:
            if r.type == rec.OFFSET_COMMIT:
                self.replay(r.key, r.value)

    # --- OffsetCommit ------------------------------------------------------------------------
    async def commit(self, info, req) -> OffsetCommitResponse:
        by_id = info.api_version >= TOPIC_ID_VERSION
        response = OCR(topics=[])
        valid = []   # (topic name, request partition, response partition)
        for topic in req.topics:
            name, meta, rtopic = self._commit_topic(topic, by_id)
            response.topics.append(rtopic)
            for p in topic.partitions:
                rp = OCR.OffsetCommitResponsePartition(partition_index=p.partition_index)
                rtopic.partitions.append(rp)
                if meta is None:
                    rp.error_code = UNKNOWN_TOPIC_ID if by_id else UNKNOWN_TOPIC_OR_PARTITION
                elif not 0 <= p.partition_index < meta.partitions:
                    rp.error_code = UNKNOWN_TOPIC_OR_PARTITION
                else:
                    valid.append((name, p, rp))
        if not valid:
            return response
        try:
            self._validate_commit(info, req)
        except GroupError as exc:
            for _, _, rp in valid:
                rp.error_code = exc.code
            return response
        await self._write_commits(req, valid)
        return response

    def _commit_topic(self, topic, by_id):
        if by_id:
            meta = self.shard.topics.topic_by_id(topic.topic_id)
            rtopic = OCR.OffsetCommitResponseTopic(topic_id=topic.topic_id, partitions=[])
            return (meta.name if meta is not None else None), meta, rtopic
        meta = self.shard.topics.topic(topic.name)
        return topic.name, meta, OCR.OffsetCommitResponseTopic(name=topic.name, partitions=[])

    def _validate_commit(self, info, req):
        generation = req.generation_id_or_member_epoch
        group = self.shard.groups.get(req.group_id)
        if group is None:
            if generation >= 0:
                raise GroupError(GROUP_ID_NOT_FOUND if info.api_version >= GROUP_ID_NOT_FOUND_VERSION
                                 else ILLEGAL_GENERATION, f"group {req.group_id} not found")
            group = self.shard.ensure_group_for_offsets(req.group_id)
        group.validate_offset_commit(req.member_id, req.group_instance_id, generation,
                                     info.api_version)
        if group.type == "classic":
            self.shard.classic.touch(group, req.member_id)
        return group

    async def _write_commits(self, req, valid):
        now = self.shard.clock.now_ms()
        retention = getattr(req, "retention_time_ms", -1)
        expire = now + retention if retention is not None and retention != -1 else None
        limit = self.shard.config.offset_metadata_max_bytes
        records, written = [], []
        for name, p, rp in valid:
            metadata = p.committed_metadata
            if metadata is not None and utf16_length(metadata) > limit:
                rp.error_code = OFFSET_METADATA_TOO_LARGE
                continue
            oam = OffsetAndMetadata(p.committed_offset, p.committed_leader_epoch, metadata or "",
                                    now, expire)
            records.append(rec.offset_commit(req.group_id, name, p.partition_index, oam))
            written.append(rp)
        if not records:
            return
        try:
            await self.shard.write(records, on_written=self.apply)
        except Exception as exc:  # the append failed: every partition carries its code
            code = append_error_code(exc)
            for rp in written:
                rp.error_code = code

    # --- OffsetFetch -------------------------------------------------------------------------
    def fetch(self, group_id, topics, member_id=None, member_epoch=-1, by_id=False):
        """One OffsetFetchResponseGroup (the v8+ shape). `topics` None means every committed
        partition; else [(name or None, topic_id, [partition, ...])]."""
        out = OFR.OffsetFetchResponseGroup(group_id=group_id, topics=[])
        group = self.shard.groups.get(group_id)
        known = group is not None
        if known:
            try:
                group.validate_offset_fetch(member_id, member_epoch)
            except GroupError as exc:
                if exc.code != GROUP_ID_NOT_FOUND:
                    out.error_code = exc.code
                    return out
                known = False
        stored = self.offsets.get(group_id, {}) if known else {}
        if topics is None:
            for name in sorted(stored):
                out.topics.append(self._fetched_topic(name, sorted(stored[name]), stored, by_id))
            out.topics = [t for t in out.topics if t is not None]
        else:
            for name, topic_id, partitions in topics:
                out.topics.append(self._requested_topic(name, topic_id, partitions, stored, by_id))
        return out

    def _fetched_topic(self, name, partitions, stored, by_id):
        rtopic = OFR.OffsetFetchResponseTopics(name=name, partitions=[])
        if by_id:
            meta = self.shard.topics.topic(name)
            if meta is None:
                return None
            rtopic.name, rtopic.topic_id = "", meta.topic_id
        rtopic.partitions = [_fetched(p, stored.get(name, {}).get(p)) for p in partitions]
        return rtopic

    def _requested_topic(self, name, topic_id, partitions, stored, by_id):
        if not by_id:
            rtopic = OFR.OffsetFetchResponseTopics(name=name, partitions=[])
            rtopic.partitions = [_fetched(p, stored.get(name, {}).get(p)) for p in partitions]
            return rtopic
        rtopic = OFR.OffsetFetchResponseTopics(topic_id=topic_id, partitions=[])
        meta = self.shard.topics.topic_by_id(topic_id)
        for p in partitions:
            if meta is None:
                rtopic.partitions.append(_fetched(p, None, UNKNOWN_TOPIC_ID))
            else:
                rtopic.partitions.append(_fetched(p, stored.get(meta.name, {}).get(p)))
        return rtopic

    # --- OffsetDelete ------------------------------------------------------------------------
    async def delete(self, req) -> OffsetDeleteResponse:
        response = ODR(error_code=0, topics=[])
        group = self.shard.groups.get(req.group_id)
        try:
            if group is None:
                raise GroupError(GROUP_ID_NOT_FOUND, f"group {req.group_id} not found")
            group.validate_offset_delete()
        except GroupError as exc:
            response.error_code = exc.code
            return response
        records = []
        for topic in req.topics:
            rtopic = ODR.OffsetDeleteResponseTopic(name=topic.name, partitions=[])
            response.topics.append(rtopic)
            records += self._delete_topic(group, topic, rtopic)
        if records:
            try:
                await self.shard.write(records, on_written=self.apply)
            except Exception as exc:
                return ODR(error_code=append_error_code(exc), topics=[])
        return response

    def _delete_topic(self, group, topic, rtopic) -> list:
        meta = self.shard.topics.topic(topic.name)
        subscribed = meta is not None and group.is_subscribed_to(topic.name)
        records = []
        for p in topic.partitions:
            rp = ODR.OffsetDeleteResponsePartition(partition_index=p.partition_index)
            rtopic.partitions.append(rp)
            if meta is None or not 0 <= p.partition_index < meta.partitions:
                rp.error_code = UNKNOWN_TOPIC_OR_PARTITION
            elif subscribed:
                rp.error_code = GROUP_SUBSCRIBED_TO_TOPIC
            elif self.get(group.group_id, topic.name, p.partition_index) is not None:
                records.append(rec.offset_commit_tombstone(group.group_id, topic.name,
                                                           p.partition_index))
        return records

    # --- deletion and expiry -----------------------------------------------------------------
    def delete_all_records(self, group_id) -> list:
        return [rec.offset_commit_tombstone(group_id, topic, p)
                for topic, parts in self.offsets.get(group_id, {}).items() for p in parts]

    def deleted_topic_records(self, topics) -> list:
        """Tombstones for every group's offsets of deleted topics (Kafka's onPartitionsDeleted)."""
        return [rec.offset_commit_tombstone(group_id, topic, p)
                for group_id, stored in self.offsets.items()
                for topic in topics if topic in stored for p in stored[topic]]

    def expired_records(self, group, now_ms) -> tuple:
        """(tombstones for the group's expired offsets, whether none will remain)."""
        stored = self.offsets.get(group.group_id)
        if not stored:
            return [], True
        base = group.offset_expiration_base()
        if base is None:
            return [], False
        retention = self.shard.config.offsets_retention_ms
        records, all_expired = [], True
        for topic, parts in stored.items():
            if group.is_subscribed_to(topic):
                all_expired = False
                continue
            for partition, oam in parts.items():
                if _is_expired(oam, base, now_ms, retention):
                    records.append(rec.offset_commit_tombstone(group.group_id, topic, partition))
                else:
                    all_expired = False
        return records, all_expired


def _is_expired(oam, base, now_ms, retention_ms) -> bool:
    if oam.expire_timestamp_ms is not None:
        return now_ms >= oam.expire_timestamp_ms
    return now_ms - base(oam) >= retention_ms


def _fetched(partition, oam, error=0):
    if oam is None:
        return OFR.OffsetFetchResponsePartitions(partition_index=partition, committed_offset=-1,
                                                 committed_leader_epoch=-1, metadata="",
                                                 error_code=error)
    return OFR.OffsetFetchResponsePartitions(partition_index=partition,
                                             committed_offset=oam.offset,
                                             committed_leader_epoch=oam.leader_epoch,
                                             metadata=oam.metadata, error_code=error)


__all__ = ["OffsetAndMetadata", "OffsetManager", "ZERO_UUID"]
