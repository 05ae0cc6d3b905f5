"""Cluster metadata: topics, partitions, topic configs, brokers.

Single-node today: `MetadataStore` is the controller's state machine, fed by metadata records
(TopicRecord, PartitionRecord, ConfigRecord, RemoveTopicRecord — Kafka's KRaft record names) and
persisted in a local append-only record log. The multi-broker issue replaces the local log with a
Raft-replicated `__cluster_metadata` log; the records and the image API stay.
"""
