"""ReplicaManager: the partitions this broker hosts, over the LogManager.

Single node: this broker leads every partition at leader epoch 0 and its ISR is itself, so the
high watermark follows what is written. Topic lifecycle (create / add partitions / delete) goes
through the metadata store first, then the logs, so a crash between the two leaves metadata that
start-up completes (logs are created for every partition the metadata names).
"""
from __future__ import annotations

import asyncio
import logging
import os

from pybroker.dynamic_config import Registry
from pybroker.log.cleaner import CleanerConfig
from pybroker.log.config import LogConfig
from pybroker.log.manager import LogManager
from pybroker.metadata.store import TopicError, topic_id_to_str
from pybroker.replica.partition import Partition
from pybroker.replica.producer_ids import ProducerIdManager

log = logging.getLogger("pybroker.replica")
TOPIC_ALREADY_EXISTS = 36


class ReplicaManager:
    def __init__(self, config, metadata, purgatory, memory=False):
        self.config = config
        self.metadata = metadata
        self.purgatory = purgatory
        self.memory = memory
        self.registry = Registry(config, metadata, config.node_id)
        self.defaults = self.registry.log_defaults()
        self.logs = LogManager([] if memory else config.log_dirs, config=self.defaults,
                               node_id=config.node_id, cluster_id=config["cluster.id"],
                               storage="memory" if memory else "disk",
                               writer=config["log.writer"])
        self.partitions: dict = {}  # (topic, index) -> Partition
        pid_path = None if memory else os.path.join(config.log_dirs[0], "__pybroker_metadata",
                                                    "producer-id-block")
        self.producer_ids = ProducerIdManager(pid_path)
        self._deleting = set()
        self._deleting_topics: dict = {}  # name -> task still removing that topic's logs

    @property
    def cluster_id(self) -> str:
        if self.logs.cluster_id is None:
            from pybroker.log.checkpoint import random_uuid
            self.logs.cluster_id = random_uuid()
        return self.logs.cluster_id

    async def start(self):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.logs.startup)
        await self._delete_strays()
        for info in list(self.metadata.topics.values()):
            self._open_topic(info)
        self.logs.start_background(
            checkpoint_interval_s=self.config["log.flush.offset.checkpoint.interval.ms"] / 1000,
            retention_check_s=self.config["log.retention.check.interval.ms"] / 1000,
            initial_delay_s=self.config["log.initial.task.delay.ms"] / 1000,
            cleaner=self.cleaner_config())

    async def _delete_strays(self):
        """Delete logs the metadata does not name, or names with another topic id: what a crash
        in the middle of a topic deletion leaves (Kafka removes such stray logs at start-up).
        Left in place, one would be taken for a partition of a new topic of the same name."""
        for (topic, index), log_ in list(self.logs.all_logs().items()):
            info = self.metadata.topics.get(topic)
            if info is not None and index < info.partitions and \
                    log_.topic_id in (None, topic_id_to_str(info.topic_id)):
                continue
            log.warning("deleting stray log %s-%d: not a partition of a topic in the metadata",
                        topic, index)
            await self.logs.delete_log(topic, index)

    async def stop(self):
        if self._deleting:  # finish topic deletions before the logs are closed under them
            await asyncio.gather(*self._deleting, return_exceptions=True)
        await self.logs.shutdown()

    def log_config(self, info) -> LogConfig:
        return self.registry.log_config(info.configs)

    # -- live configuration (AlterConfigs / IncrementalAlterConfigs) ---------------------------
    def cleaner_config(self) -> CleanerConfig:
        return CleanerConfig.from_values(self.registry.broker_typed,
                                         enable=self.config["log.cleaner.enable"])

    def reconfigure_topic(self, name):
        """A topic's configs changed: every partition's log takes the new LogConfig now."""
        info = self.metadata.topics.get(name)
        if info is not None:
            self.logs.set_topic_config(name, self.log_config(info))

    def reconfigure_all(self):
        """Dynamic broker configs changed: new defaults for every topic, new cleaner settings."""
        self.defaults = self.registry.log_defaults()
        self.logs.default_config = self.defaults
        for name in list(self.metadata.topics):
            self.reconfigure_topic(name)
        self.logs.reconfigure_cleaner(self.cleaner_config())

    def _open_topic(self, info, start=0):
        cfg = self.log_config(info)
        tid = topic_id_to_str(info.topic_id)
        for p in range(start, info.partitions):
            log_ = self.logs.get_or_create_log(info.name, p, config=cfg, topic_id=tid)
            self.partitions[(info.name, p)] = Partition(info, p, log_, self)

    # -- topic lifecycle ---------------------------------------------------------------------
    def create_topic(self, name, partitions, configs):
        if name in self._deleting_topics:
            raise TopicError(TOPIC_ALREADY_EXISTS, f"Topic '{name}' is marked for deletion.")
        info = self.metadata.create_topic(name, partitions, configs)
        self._open_topic(info)
        return info

    def add_partitions(self, name, total):
        info = self.metadata.topics[name]
        start = info.partitions
        self.metadata.add_partitions(name, total)
        self._open_topic(info, start)

    def delete_topic(self, name):
        info = self.metadata.delete_topic(name)
        for p in range(info.partitions):
            part = self.partitions.pop((name, p), None)
            if part is not None:
                part.deleted = True
                self.purgatory.notify(part.key)
        task = asyncio.ensure_future(self._delete_logs(name, info.partitions))
        self._deleting.add(task)
        self._deleting_topics[name] = task
        task.add_done_callback(lambda t, n=name: self._deletion_done(n, t))
        return info

    def _deletion_done(self, name, task):
        self._deleting.discard(task)
        if self._deleting_topics.get(name) is task:
            del self._deleting_topics[name]

    def deletion_in_progress(self, name):
        """The task still removing a deleted topic's logs, or None. Until it is done the old log
        directories sit where a new topic of that name would open its logs, so creation waits."""
        return self._deleting_topics.get(name)

    async def _delete_logs(self, name, partitions):
        try:
            await self.logs.delete_logs(name, range(partitions))
        except OSError as exc:
            log.error("deleting the logs of %s failed: %s", name, exc)

    def partition(self, topic, index):
        return self.partitions.get((topic, index))

    def notify_append(self, part):
        self.purgatory.notify(part.key)
