"""asv benchmarks for the protocol codec (pybroker.codec.protocol).

Two hot paths of a broker: decoding a one-partition Produce request carrying a 1 KiB record
batch (whole frame: request header + body; the records come out as a zero-copy view), and
encoding a one-partition Fetch response carrying 1 KiB of records (whole frame: size prefix,
response header, body). Ours compiled (pybroker_core.protocol) and pure (the twin), against the
codecs of kafka-python 3.x (generated per-version decoders; Produce decode includes the header,
Fetch encode is body only — it cannot frame a response) and aiokafka (Struct classes: body only,
Produce up to v8, Fetch up to v11). The plain-script twin is bench/protocol_bench.py.
"""
import random

IMPLEMENTATIONS = ["compiled", "pure", "kafka-python", "aiokafka"]
PRODUCE_VERSIONS = [7, 11]
FETCH_VERSIONS = [11, 12]
RECORDS = random.Random(1).randbytes(1024)
TOPIC = "bench-topic"


def _codec(name):
    from pybroker.codec.protocol import ProtocolCodec
    if name == "pure":
        from pybroker.codec._pure import protocol as core
    else:
        from pybroker_core import protocol as core
    return ProtocolCodec(core)


def produce_request():
    from pybroker.codec.messages import ProduceRequest
    return ProduceRequest(acks=-1, timeout_ms=30000, topic_data=[ProduceRequest.TopicProduceData(
        name=TOPIC, partition_data=[ProduceRequest.PartitionProduceData(index=0,
                                                                        records=RECORDS)])])


def produce_frame(version):
    """The request frame without its size prefix, as the network layer hands it over."""
    return _codec("pure").encode_request(0, version, 7, "bench-client", produce_request())[4:]


def fetch_response():
    from pybroker.codec.messages import FetchResponse
    return FetchResponse(throttle_time_ms=0, session_id=0, responses=[
        FetchResponse.FetchableTopicResponse(topic=TOPIC, partitions=[FetchResponse.PartitionData(
            partition_index=0, high_watermark=1000, last_stable_offset=1000, log_start_offset=0,
            aborted_transactions=[], records=RECORDS)])])


def make_decoder(name, version):
    """A no-argument callable decoding the Produce frame of `version` with `name`."""
    frame = produce_frame(version)
    if name in ("compiled", "pure"):
        codec = _codec(name)
        return lambda: codec.decode_request(frame)
    if name == "kafka-python":
        from kafka.protocol.producer import ProduceRequest
        return lambda: ProduceRequest.decode(frame, version=version, header=True)
    if name == "aiokafka":
        import aiokafka.protocol.produce as ap
        cls = getattr(ap, f"ProduceRequest_v{version}", None)
        if cls is None:
            raise NotImplementedError(f"aiokafka has no ProduceRequest v{version}")
        body = _codec("pure").encode(("request", "Produce"), version, produce_request())
        return lambda: cls.decode(body)
    raise ValueError(name)


def make_encoder(name, version):
    """A no-argument callable encoding the Fetch response of `version` with `name`."""
    if name in ("compiled", "pure"):
        codec, resp = _codec(name), fetch_response()
        return lambda: codec.encode_response(1, version, 7, resp)
    if name == "kafka-python":
        from kafka.protocol.consumer import FetchResponse as KF
        resp = KF(throttle_time_ms=0, error_code=0, session_id=0, responses=[
            KF.FetchableTopicResponse(topic=TOPIC, partitions=[
                KF.FetchableTopicResponse.PartitionData(
                    partition_index=0, error_code=0, high_watermark=1000, last_stable_offset=1000,
                    log_start_offset=0, aborted_transactions=[], records=RECORDS)])])
        return lambda: resp.encode(version=version)
    if name == "aiokafka":
        import aiokafka.protocol.fetch as af
        cls = getattr(af, f"FetchResponse_v{version}", None)
        if cls is None:
            raise NotImplementedError(f"aiokafka has no FetchResponse v{version}")
        resp = cls(0, 0, 0, [(TOPIC, [(0, 0, 1000, 1000, 0, [], -1, RECORDS)])])
        return resp.encode
    raise ValueError(name)


class ProduceRequestDecode:
    params = (IMPLEMENTATIONS, PRODUCE_VERSIONS)
    param_names = ["implementation", "version"]

    def setup(self, name, version):
        self.fn = make_decoder(name, version)
        self.fn()      # warm: programs are compiled and lowered on first use

    def time_decode(self, name, version):
        self.fn()


class FetchResponseEncode:
    params = (IMPLEMENTATIONS, FETCH_VERSIONS)
    param_names = ["implementation", "version"]

    def setup(self, name, version):
        self.fn = make_encoder(name, version)
        self.fn()

    def time_encode(self, name, version):
        self.fn()
