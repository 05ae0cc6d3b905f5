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

IMPLEMENTATION = _impl.IMPLEMENTATION

__all__ = ["crc32c", "CodecError", "DecodeError", "CorruptRecordError", "InvalidRecordError",
           "UnsupportedCompressionError", "UnsupportedVersionError", "EncodeError",
           "IMPLEMENTATION"]
