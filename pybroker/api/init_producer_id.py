"""InitProducerId (key 22), versions 0-5 (v6, two-phase commit, is unstable in Kafka 4.3).

Idempotent producers (transactional_id null): a new producer id with epoch 0 each call; v3+ with
a known producer id and epoch bumps the epoch (epoch exhaustion → a new id), which lets a producer
recover from an unknown-sequence error without losing its id. Producer ids come from a block
persisted with the metadata so they never repeat across restarts. Transactional ids are answered
with COORDINATOR_NOT_AVAILABLE (15) until the transactions issue adds the coordinator; a
transaction timeout is not checked for idempotent producers (as Kafka).
"""
from pybroker.codec.messages import InitProducerIdResponse

API_KEY = 22
VERSIONS = (0, 5)
R = InitProducerIdResponse
COORDINATOR_NOT_AVAILABLE = 15
MAX_EPOCH = 32767


def handle(ctx, req):
    if req.transactional_id is not None:
        return R(throttle_time_ms=0, error_code=COORDINATOR_NOT_AVAILABLE, producer_id=-1,
                 producer_epoch=-1)
    ids = ctx.state.producer_ids
    if ctx.api_version >= 3 and req.producer_id >= 0 and req.producer_epoch >= 0 \
            and req.producer_epoch < MAX_EPOCH - 1:
        return R(throttle_time_ms=0, error_code=0, producer_id=req.producer_id,
                 producer_epoch=req.producer_epoch + 1)
    return R(throttle_time_ms=0, error_code=0, producer_id=ids.next_id(), producer_epoch=0)
