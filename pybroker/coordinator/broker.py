"""The group coordinator inside a broker node (BrokerState), single node: this broker leads every
partition of __consumer_offsets, so it coordinates every group.

    self.group_coordinator = coordinator_broker.create(self)          # BrokerState.__init__
    await coordinator_broker.start(self.group_coordinator, self)      # BrokerState.start, after
                                                                      # replicas.start()
    await self.group_coordinator.stop()                               # BrokerState.stop, before
                                                                      # replicas.stop()

__consumer_offsets is created on first use, as Kafka does: the first FindCoordinator creates it
(offsets.topic.num.partitions partitions, cleanup.policy=compact) and answers
COORDINATOR_NOT_AVAILABLE while its partitions load; clients retry. When it exists at start-up,
every partition is loaded before the broker serves requests.

`GROUP_API_MODULES` lists the handler modules (pybroker.api.<name>) of the group APIs.
"""
from __future__ import annotations

import asyncio
import logging

from pybroker.coordinator.config import GroupCoordinatorConfig
from pybroker.coordinator.coordinator import GroupCoordinator
from pybroker.coordinator.storage import PartitionOffsetsLog
from pybroker.coordinator.topics import OFFSETS_TOPIC, MetadataTopics

log = logging.getLogger("pybroker.coordinator")

GROUP_API_MODULES = (
    "find_coordinator", "join_group", "sync_group", "heartbeat", "leave_group", "offset_commit",
    "offset_fetch", "offset_delete", "describe_groups", "list_groups", "delete_groups",
    "consumer_group_heartbeat", "consumer_group_describe",
)
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "compression.type": "producer",
                         "segment.bytes": "104857600"}


def create(state) -> GroupCoordinator:
    config = GroupCoordinatorConfig.from_broker(state.config)
    coordinator = GroupCoordinator(config, PartitionOffsetsLog(state.replicas),
                                   MetadataTopics(state.metadata))
    coordinator.offsets_topic_creator = lambda: _create_offsets_topic(coordinator, state)
    return coordinator


async def start(coordinator, state) -> None:
    info = state.metadata.topics.get(OFFSETS_TOPIC)
    coordinator.start(info.partitions if info is not None else None)
    if info is not None:
        await coordinator.load_all()


def _create_offsets_topic(coordinator, state):
    """Create __consumer_offsets and load its (empty) partitions in the background; returns the
    loading task."""
    if OFFSETS_TOPIC not in state.metadata.topics:
        partitions = coordinator.config.offsets_topic_num_partitions
        state.replicas.create_topic(OFFSETS_TOPIC, partitions, dict(OFFSETS_TOPIC_CONFIGS))
        coordinator.num_partitions = partitions
        log.info("created %s with %d partitions", OFFSETS_TOPIC, partitions)
    return asyncio.ensure_future(coordinator.load_all())
