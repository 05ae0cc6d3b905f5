"""Partitions hosted by this broker: leader state over the log, appends, reads, delayed operations."""
