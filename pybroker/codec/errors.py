"""Typed codec errors. The core raises these; the broker maps `error_code` to a Kafka error.

Every decode error carries the byte position where decoding failed and a reason, so a
malformed frame can be logged precisely and answered (or the connection closed) without guessing.
"""


class CodecError(Exception):
    """Base class of every error raised by pybroker.codec."""

    error_code = -1  # UNKNOWN_SERVER_ERROR


class DecodeError(CodecError, ValueError):
    """Input bytes could not be decoded: truncated, out of range, or malformed."""

    error_code = 42  # INVALID_REQUEST

    def __init__(self, reason, position=None):
        self.reason = reason
        self.position = position
        if position is None:
            super().__init__(reason)
        else:
            super().__init__(f"{reason} (at byte {position})")


class CorruptRecordError(DecodeError):
    """A record batch failed its CRC or structural checks (CORRUPT_MESSAGE)."""

    error_code = 2


class InvalidRecordError(DecodeError):
    """A record batch is well-formed but breaks a rule (INVALID_RECORD)."""

    error_code = 87


class UnsupportedCompressionError(DecodeError):
    """The batch names a compression codec we do not know (UNSUPPORTED_COMPRESSION_TYPE)."""

    error_code = 76


class UnsupportedVersionError(CodecError):
    """No definition exists for this (api key, version) (UNSUPPORTED_VERSION)."""

    error_code = 35
    header = None  # the request header, when decode_request could parse it (see codec.protocol)

    def __init__(self, api_key, api_version, reason=None):
        self.api_key = api_key
        self.api_version = api_version
        super().__init__(reason or f"unsupported api key {api_key} version {api_version}")


class EncodeError(CodecError):
    """A value cannot be written in the requested version (missing field, out of range)."""
