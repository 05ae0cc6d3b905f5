"""__consumer_offsets records: typed values, builders (Kafka's GroupCoordinatorRecordHelpers) and
the byte codec (Kafka's CoordinatorRecordSerde).

    record key   = int16 key_version | key struct at key_version     (the version is the type)
    record value = int16 value_version | value struct at that version; None = tombstone

Key versions (record types): 0/1 OffsetCommit, 2 GroupMetadata, 3 ConsumerGroupMetadata (group
epoch), 4 ConsumerGroupPartitionMetadata (subscribed topics), 5 ConsumerGroupMemberMetadata
(subscription), 6 ConsumerGroupTargetAssignmentMetadata (assignment epoch), 7
ConsumerGroupTargetAssignmentMember, 8 ConsumerGroupCurrentMemberAssignment. Other types (share
and streams groups, regex resolutions) are skipped on load.

The schemas are our own definitions in `records.txt` beside this file, run by the generic
protocol codec (`ProtocolCodec` over a Registry of that file).
"""
from __future__ import annotations

import os
import struct

from pybroker.codec.messages import Registry
from pybroker.codec.protocol import ProtocolCodec

_REGISTRY = Registry(defs_dir=os.path.dirname(os.path.abspath(__file__)))
_CODEC = ProtocolCodec(registry=_REGISTRY)
_VERSION = struct.Struct(">h")

OFFSET_COMMIT = 1
GROUP_METADATA = 2
CONSUMER_GROUP_METADATA = 3
CONSUMER_GROUP_PARTITION_METADATA = 4
CONSUMER_GROUP_MEMBER_METADATA = 5
CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA = 6
CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER = 7
CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT = 8

# key version -> (key schema, value schema, value version we write)
TYPES = {
    0: ("OffsetCommitKey", "OffsetCommitValue", 3),
    1: ("OffsetCommitKey", "OffsetCommitValue", 3),
    2: ("GroupMetadataKey", "GroupMetadataValue", 3),
    3: ("ConsumerGroupMetadataKey", "ConsumerGroupMetadataValue", 0),
    4: ("ConsumerGroupPartitionMetadataKey", "ConsumerGroupPartitionMetadataValue", 0),
    5: ("ConsumerGroupMemberMetadataKey", "ConsumerGroupMemberMetadataValue", 0),
    6: ("ConsumerGroupTargetAssignmentMetadataKey", "ConsumerGroupTargetAssignmentMetadataValue", 0),
    7: ("ConsumerGroupTargetAssignmentMemberKey", "ConsumerGroupTargetAssignmentMemberValue", 0),
    8: ("ConsumerGroupCurrentMemberAssignmentKey", "ConsumerGroupCurrentMemberAssignmentValue", 0),
}


def schema_class(name: str):
    """The typed class of a record schema, e.g. schema_class("OffsetCommitValue")."""
    return _REGISTRY.message_class("data", name)


class CoordinatorRecord:
    """One record: its type (key version), key object, value object (None = tombstone) and the
    version the value is written at."""

    __slots__ = ("type", "key", "value", "value_version")

    def __init__(self, type_, key, value, value_version=None):
        self.type = type_
        self.key = key
        self.value = value
        self.value_version = TYPES[type_][2] if value_version is None else value_version

    def key_bytes(self) -> bytes:
        return _VERSION.pack(self.type) + _CODEC.encode(("data", TYPES[self.type][0]), self.type,
                                                         self.key)

    def value_bytes(self):
        if self.value is None:
            return None
        return _VERSION.pack(self.value_version) + _CODEC.encode(
            ("data", TYPES[self.type][1]), self.value_version, self.value)

    def __repr__(self):
        return f"CoordinatorRecord({self.type}, {self.key!r}, {self.value!r})"


def decode(key, value):
    """A CoordinatorRecord from a record's key and value bytes; None for record types this
    coordinator does not keep. Malformed bytes raise pybroker.codec.errors.DecodeError."""
    key = memoryview(key)
    if len(key) < 2:
        from pybroker.codec.errors import DecodeError
        raise DecodeError("coordinator record key shorter than its version", 0)
    key_version = _VERSION.unpack_from(key)[0]
    entry = TYPES.get(key_version)
    if entry is None:
        return None
    key_obj = _CODEC.decode(("data", entry[0]), key_version, key[2:])
    if value is None:
        return CoordinatorRecord(key_version, key_obj, None)
    value = memoryview(value)
    if len(value) < 2:
        from pybroker.codec.errors import DecodeError
        raise DecodeError("coordinator record value shorter than its version", 0)
    value_version = _VERSION.unpack_from(value)[0]
    value_obj = _CODEC.decode(("data", entry[1]), value_version, value[2:])
    return CoordinatorRecord(key_version, key_obj, value_obj, value_version)


# --- builders: offsets ----------------------------------------------------------------------------

def offset_commit(group_id, topic, partition, oam):
    """An OffsetCommit record for an OffsetAndMetadata (value v1 when it carries an expire
    timestamp, as Kafka writes for OffsetCommit v2-v4 retention; else v3)."""
    value = schema_class("OffsetCommitValue")(
        offset=oam.offset, leader_epoch=oam.leader_epoch, metadata=oam.metadata,
        commit_timestamp=oam.commit_timestamp_ms,
        expire_timestamp=oam.expire_timestamp_ms if oam.expire_timestamp_ms is not None else -1)
    version = 1 if oam.expire_timestamp_ms is not None else 3
    if version == 1:
        value.leader_epoch = -1
    return CoordinatorRecord(OFFSET_COMMIT, _offset_key(group_id, topic, partition), value, version)


def offset_commit_tombstone(group_id, topic, partition):
    return CoordinatorRecord(OFFSET_COMMIT, _offset_key(group_id, topic, partition), None)


def _offset_key(group_id, topic, partition):
    return schema_class("OffsetCommitKey")(group=group_id, topic=topic, partition=partition)


# --- builders: classic groups ---------------------------------------------------------------------

def group_metadata(group, assignment: dict):
    """A GroupMetadata record of a classic group with the given member assignments."""
    V = schema_class("GroupMetadataValue")
    members = []
    for m in group.members.values():
        subscription = m.metadata(group.protocol_name) if group.protocol_name is not None else b""
        members.append(V.MemberMetadata(
            member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
            client_host=m.client_host, rebalance_timeout=m.rebalance_timeout_ms,
            session_timeout=m.session_timeout_ms, subscription=subscription or b"",
            assignment=assignment.get(m.member_id, b"")))
    value = V(protocol_type=group.protocol_type or "", generation=group.generation_id,
              protocol=group.protocol_name, leader=group.leader_id,
              current_state_timestamp=group.state_timestamp_ms, members=members)
    return CoordinatorRecord(GROUP_METADATA, _group_key(group.group_id), value)


def empty_group_metadata(group):
    value = schema_class("GroupMetadataValue")(
        protocol_type=group.protocol_type or "", generation=0, protocol=None, leader=None,
        current_state_timestamp=group.state_timestamp_ms, members=[])
    return CoordinatorRecord(GROUP_METADATA, _group_key(group.group_id), value)


def group_metadata_tombstone(group_id):
    return CoordinatorRecord(GROUP_METADATA, _group_key(group_id), None)


def _group_key(group_id):
    return schema_class("GroupMetadataKey")(group=group_id)


# --- builders: consumer groups (KIP-848) -----------------------------------------------------------

def _gkey(type_, group_id, member_id=None):
    cls = schema_class(TYPES[type_][0])
    return cls(group_id=group_id) if member_id is None else cls(group_id=group_id,
                                                                member_id=member_id)


def consumer_group_epoch(group_id, epoch):
    return CoordinatorRecord(CONSUMER_GROUP_METADATA, _gkey(CONSUMER_GROUP_METADATA, group_id),
                             schema_class("ConsumerGroupMetadataValue")(epoch=epoch))


def consumer_group_epoch_tombstone(group_id):
    return CoordinatorRecord(CONSUMER_GROUP_METADATA, _gkey(CONSUMER_GROUP_METADATA, group_id),
                             None)


def consumer_group_subscription_metadata(group_id, metadata: dict):
    """metadata: topic name -> (topic_id, num_partitions)."""
    V = schema_class("ConsumerGroupPartitionMetadataValue")
    topics = [V.TopicMetadata(topic_id=tid, topic_name=name, num_partitions=n, partition_metadata=[])
              for name, (tid, n) in sorted(metadata.items())]
    return CoordinatorRecord(CONSUMER_GROUP_PARTITION_METADATA,
                             _gkey(CONSUMER_GROUP_PARTITION_METADATA, group_id), V(topics=topics))


def consumer_group_subscription_metadata_tombstone(group_id):
    return CoordinatorRecord(CONSUMER_GROUP_PARTITION_METADATA,
                             _gkey(CONSUMER_GROUP_PARTITION_METADATA, group_id), None)


def consumer_group_member_subscription(group_id, member):
    V = schema_class("ConsumerGroupMemberMetadataValue")
    classic = None
    if member.classic_protocols is not None:
        classic = V.ClassicMemberMetadata(
            session_timeout_ms=member.classic_session_timeout_ms,
            supported_protocols=[V.ClassicProtocol(name=n, metadata=md)
                                 for n, md in member.classic_protocols])
    value = V(instance_id=member.instance_id, rack_id=member.rack_id, client_id=member.client_id,
              client_host=member.client_host,
              subscribed_topic_names=sorted(member.subscribed_topic_names),
              subscribed_topic_regex=member.subscribed_topic_regex,
              rebalance_timeout_ms=member.rebalance_timeout_ms,
              server_assignor=member.server_assignor, classic_member_metadata=classic)
    return CoordinatorRecord(CONSUMER_GROUP_MEMBER_METADATA,
                             _gkey(CONSUMER_GROUP_MEMBER_METADATA, group_id, member.member_id), value)


def consumer_group_member_subscription_tombstone(group_id, member_id):
    return CoordinatorRecord(CONSUMER_GROUP_MEMBER_METADATA,
                             _gkey(CONSUMER_GROUP_MEMBER_METADATA, group_id, member_id), None)


def consumer_group_target_assignment(group_id, member_id, partitions: dict):
    V = schema_class("ConsumerGroupTargetAssignmentMemberValue")
    value = V(topic_partitions=[V.TopicPartition(topic_id=tid, partitions=sorted(ps))
                                for tid, ps in sorted(partitions.items()) if ps])
    return CoordinatorRecord(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
                             _gkey(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, group_id, member_id),
                             value)


def consumer_group_target_assignment_tombstone(group_id, member_id):
    return CoordinatorRecord(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
                             _gkey(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, group_id, member_id),
                             None)


def consumer_group_target_assignment_epoch(group_id, epoch):
    return CoordinatorRecord(
        CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
        _gkey(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, group_id),
        schema_class("ConsumerGroupTargetAssignmentMetadataValue")(assignment_epoch=epoch))


def consumer_group_target_assignment_epoch_tombstone(group_id):
    return CoordinatorRecord(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
                             _gkey(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, group_id), None)


def consumer_group_current_assignment(group_id, member):
    V = schema_class("ConsumerGroupCurrentMemberAssignmentValue")
    value = V(member_epoch=member.member_epoch, previous_member_epoch=member.previous_member_epoch,
              state=member.state, assigned_partitions=_tps(V, member.assigned),
              partitions_pending_revocation=_tps(V, member.pending_revocation))
    return CoordinatorRecord(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
                             _gkey(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, group_id,
                                   member.member_id), value)


def consumer_group_current_assignment_tombstone(group_id, member_id):
    return CoordinatorRecord(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
                             _gkey(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, group_id, member_id),
                             None)


def _tps(V, assignment: dict):
    return [V.TopicPartitions(topic_id=tid, partitions=sorted(ps))
            for tid, ps in sorted(assignment.items()) if ps]


def partitions_from(topic_partitions) -> dict:
    """{topic_id: set(partitions)} from a list of TopicPartition(s) structs."""
    out = {}
    for tp in topic_partitions or ():
        if tp.partitions:
            out.setdefault(tp.topic_id, set()).update(tp.partitions)
    return out
