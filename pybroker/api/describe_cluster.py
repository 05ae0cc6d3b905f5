"""DescribeCluster (key 60), versions 0-2: this node as the only broker and the controller.
Endpoint type 2 (controllers) is answered with UNSUPPORTED_ENDPOINT_TYPE (115) on this broker
listener, as Kafka does; fenced brokers (v2) are none."""
from pybroker.codec.messages import DescribeClusterResponse

API_KEY = 60
VERSIONS = (0, 2)
R = DescribeClusterResponse
BROKERS = 1


def handle(ctx, req):
    state = ctx.state
    if ctx.api_version >= 1 and req.endpoint_type != BROKERS:
        return R(throttle_time_ms=0, error_code=115, error_message="The target endpoint type is not "
                 "supported by this listener.", endpoint_type=req.endpoint_type,
                 cluster_id=state.cluster_id, controller_id=-1, brokers=[])
    host, port = state.broker.network.advertised(ctx.listener)
    return R(throttle_time_ms=0, error_code=0, endpoint_type=BROKERS, cluster_id=state.cluster_id,
             controller_id=state.node_id,
             brokers=[R.DescribeClusterBroker(broker_id=state.node_id, host=host, port=port,
                                              rack=state.config["broker.rack"], is_fenced=False)])
