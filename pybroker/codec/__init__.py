"""pybroker.codec: Kafka's bytes on the wire and on disk, usable without a broker.

    from pybroker.codec import crc32c, RecordBatch, decode_request, encode_response

See README.md ("The codec as a library") for examples. Compiled implementations come from
`pybroker_core`; pure-Python twins are used when PYBROKER_PURE=1 (see pybroker/_impl.py).
"""
from pybroker import _impl
from pybroker.codec.errors import (CodecError, CorruptRecordError, DecodeError, EncodeError,
                                   InvalidRecordError, UnsupportedCompressionError,
                                   UnsupportedVersionError)

_crc = _impl.load("crc32c")
crc32c = _crc.crc32c

from pybroker.codec.protocol import (FileRegion, decode, decode_request,  # noqa: E402
                                     decode_response, encode, encode_request, encode_response,
                                     encode_response_parts)

# Record-batch names load on first use (PEP 562): importing pybroker_core.records directly runs
# this package (pybroker_core.buffer imports pybroker.codec.errors) before records has finished
# initialising, so an eager import here would find it half-built.
_RECORDS_NAMES = ("RecordBatch", "assign_offsets", "build_batch", "build_control_batch",
                  "iter_batches")


def __getattr__(name):
    if name in _RECORDS_NAMES:
        from pybroker.codec import records
        value = globals()[name] = getattr(records, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


IMPLEMENTATION = _impl.IMPLEMENTATION

__all__ = ["crc32c", "CodecError", "DecodeError", "CorruptRecordError", "InvalidRecordError",
           "UnsupportedCompressionError", "UnsupportedVersionError", "EncodeError",
           "IMPLEMENTATION", "decode_request", "encode_response", "encode_response_parts",
           "encode_request", "decode_response", "encode", "decode", "FileRegion",
           "RecordBatch", "iter_batches", "assign_offsets", "build_batch", "build_control_batch"]
