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
    out = []
    for r in req.resources:
        ops = [(c.name, c.config_operation, c.value) for c in r.configs]
        code, message = config_changes.alter(ctx.state, r.resource_type, r.resource_name, ops,
                                             incremental=True, validate_only=req.validate_only)
        out.append(R.AlterConfigsResourceResponse(error_code=code, error_message=message,
                                                  resource_type=r.resource_type,
                                                  resource_name=r.resource_name))
    return R(throttle_time_ms=0, responses=out)
