"""AlterConfigs (key 33), versions 0-2: replace a resource's whole set of dynamic configs.

Resources: topics (2) and this broker (4; resource name "<node id>", or "" for the cluster-wide
default). Validation, persistence and live application are in pybroker/config_changes.py; each
resource succeeds or fails on its own, validate_only checks without applying. Deprecated in favour
of IncrementalAlterConfigs, but Kafka still serves it (kafka-python's alter_configs uses it).
"""
from pybroker import config_changes
from pybroker.codec.messages import AlterConfigsResponse

API_KEY = 33
VERSIONS = (0, 2)
R = AlterConfigsResponse


def handle(ctx, req):
    return config_changes.respond(ctx, req, R, lambda c: (c.name, config_changes.SET, c.value),
                                  incremental=False)
