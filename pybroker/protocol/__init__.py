"""Kafka protocol definitions (our own compact form) and their schema model."""
