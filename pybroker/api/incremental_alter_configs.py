"""IncrementalAlterConfigs (key 44), versions 0-1: SET / DELETE / APPEND / SUBTRACT per key.

Resources: topics (2) and this broker (4; "<node id>" or "" for the cluster-wide default). What
each operation means, the errors and Kafka's messages are in pybroker/config_changes.py. A change
takes effect at once: topic configs update the live LogConfig of every partition, dynamic broker
defaults apply to every topic without an override, cleaner settings reach the running cleaner.
"""
from pybroker import config_changes
from pybroker.codec.messages import IncrementalAlterConfigsResponse

API_KEY = 44
VERSIONS = (0, 1)
R = IncrementalAlterConfigsResponse


def handle(ctx, req):
    return config_changes.respond(ctx, req, R, lambda c: (c.name, c.config_operation, c.value),
                                  incremental=True)
