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
    out = []
    for r in req.resources:
        ops = [(c.name, config_changes.SET, c.value) for c in r.configs]
        code, message = config_changes.alter(ctx.state, r.resource_type, r.resource_name, ops,
                                             incremental=False, validate_only=req.validate_only)
        out.append(R.AlterConfigsResourceResponse(error_code=code, error_message=message,
                                                  resource_type=r.resource_type,
                                                  resource_name=r.resource_name))
    return R(throttle_time_ms=0, responses=out)
