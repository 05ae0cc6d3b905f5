"""pybroker: a Kafka-compatible event-streaming broker."""

__version__ = "0.1.0"
