"""Kafka requests and responses <-> typed objects: the public protocol codec.

    from pybroker.codec import decode_request, encode_response
    header, body = decode_request(frame)        # frame = the bytes after the 4-byte size prefix
    body.topic_data[0].partition_data[0].records  # a zero-copy memoryview of `frame`
    out = encode_response(header.request_api_key, header.request_api_version,
                          header.correlation_id, response)   # bytes, size prefix included

The typed classes come from `pybroker.codec.messages` (e.g. `messages.ProduceResponse`); the
programs they run are compiled from `pybroker/protocol/defs/` on first use. The interpreter is
`pybroker_core.protocol` (Cython) or its twin `pybroker.codec._pure.protocol` (PYBROKER_PURE=1).

Headers (../shared/protocol.md section 1): a request uses header v2 when its version is flexible,
else v1; a response uses header v1 when flexible, else v0 — except ApiVersions, whose response
always uses header v0 (KIP-511). A request whose key is known but whose version is not is
answered by UnsupportedVersionError carrying the parsed `header` (its version chosen by the same
flexibility rule applied to the requested number, so ApiVersions v5 is read with header v2):
the broker answers ApiVersions with a v0 body and error 35, and closes the connection for other
APIs. Like Kafka, a null client id is read as "", and bytes after the request body are ignored
(Kafka's RequestContext.parseRequest does not check for them).

Errors: DecodeError (with byte position) for malformed input, UnsupportedVersionError for an
unknown key/version, EncodeError for values that cannot be written in the requested version.
"""
from __future__ import annotations

from pybroker import _impl
from pybroker.codec.errors import UnsupportedVersionError
from pybroker.codec.messages import REGISTRY, FileRegion, Registry
from pybroker.protocol import schema

__all__ = ["ProtocolCodec", "decode_request", "encode_response", "encode_response_parts",
           "encode_request", "decode_response", "encode", "decode", "FileRegion",
           "API_VERSIONS_KEY"]

API_VERSIONS_KEY = 18


class ProtocolCodec:
    """The codec API over one interpreter (`core`) and one set of definitions (`registry`).

    The module-level functions use the default instance; tests and benchmarks build others to
    run the compiled and pure interpreters side by side."""

    def __init__(self, core=None, registry: Registry | None = None):
        self.core = core if core is not None else _impl.load("protocol")
        self.registry = registry if registry is not None else REGISTRY
        self._requests = {}   # (key, version) -> (header program, body program)
        self._responses = {}  # (key, version) -> (header program, body program, header class)

    # --- requests ---------------------------------------------------------------------------

    def decode_request(self, frame):
        """(RequestHeader, body) from a request frame without its size prefix."""
        result = self.core.decode_request_frame(self._requests, frame)
        if result is None:       # first of its (key, version): fill the table, or raise
            self._request_entry(*self.core.peek_key_version(frame), frame=frame)
            result = self.core.decode_request_frame(self._requests, frame)
        header, body = result
        if header.client_id is None:
            header.client_id = ""
        return header, body

    def encode_request(self, api_key, api_version, correlation_id, client_id, body):
        """A request frame, size prefix included."""
        hprog, bprog = self._requests.get((api_key, api_version)) or \
            self._request_entry(api_key, api_version)
        header = hprog.cls(request_api_key=api_key, request_api_version=api_version,
                           correlation_id=correlation_id, client_id=client_id)
        return self.core.encode_frame(hprog, header, bprog, body)

    def _request_entry(self, api_key, api_version, frame=None):
        msg = self.registry.by_api_key("request", api_key)
        if msg is None:
            exc = UnsupportedVersionError(api_key, api_version, f"unknown api key {api_key}")
            exc.header = None
            raise exc
        header_version = 2 if msg.is_flexible(api_version) else 1
        hprog = self.registry.program("header", "RequestHeader", header_version)
        if not schema.in_range(api_version, msg.versions):
            exc = UnsupportedVersionError(api_key, api_version)
            exc.header = self.core.decode(hprog, frame) if frame is not None else None
            if exc.header is not None and exc.header.client_id is None:
                exc.header.client_id = ""
            raise exc
        entry = (hprog, self.registry.program("request", msg.name, api_version))
        self._requests[(api_key, api_version)] = entry
        return entry

    # --- responses --------------------------------------------------------------------------

    def encode_response(self, api_key, api_version, correlation_id, body):
        """A response frame as bytes, size prefix included."""
        hprog, bprog, _ = self._responses.get((api_key, api_version)) or \
            self._response_entry(api_key, api_version)
        return self.core.encode_response_frame(hprog, correlation_id, bprog, body)

    def encode_response_parts(self, api_key, api_version, correlation_id, body):
        """Like encode_response, but a list of bytes and `FileRegion` parts: records given as
        FileRegion are not copied (the zero-copy fetch seam). The size prefix counts them all."""
        hprog, bprog, _ = self._responses.get((api_key, api_version)) or \
            self._response_entry(api_key, api_version)
        return self.core.encode_response_frame(hprog, correlation_id, bprog, body, True)

    def decode_response(self, api_key, api_version, frame):
        """(ResponseHeader, body) from a response frame without its size prefix."""
        hprog, bprog, _ = self._responses.get((api_key, api_version)) or \
            self._response_entry(api_key, api_version)
        return self.core.decode_pair(hprog, bprog, frame)

    def _response_entry(self, api_key, api_version):
        msg = self.registry.by_api_key("response", api_key)
        if msg is None:
            raise UnsupportedVersionError(api_key, api_version, f"unknown api key {api_key}")
        bprog = self.registry.program("response", msg.name, api_version)
        flexible_header = msg.is_flexible(api_version) and api_key != API_VERSIONS_KEY
        hprog = self.registry.program("header", "ResponseHeader", 1 if flexible_header else 0)
        entry = (hprog, bprog, hprog.cls)
        self._responses[(api_key, api_version)] = entry
        return entry

    # --- any message (data schemas, bodies without a frame) -----------------------------------

    def _message_key(self, message):
        if isinstance(message, type) and getattr(message, "_message", None):
            return message._message
        if isinstance(message, tuple):
            return message
        key = self.registry.find_class_name(message)
        if key is None:
            raise KeyError(f"no message {message!r}")
        return key

    def program(self, message, version):
        """The program of a message (class, class name or (kind, name)) at a version."""
        return self.registry.program(*self._message_key(message), version)

    def encode(self, message, version, obj):
        """The bytes of `obj` as `message` at `version` (no size prefix, no header)."""
        return self.core.encode(self.program(message, version), obj)

    def decode(self, message, version, buf):
        """The typed object of `message` at `version` read from the start of `buf`."""
        return self.core.decode(self.program(message, version), buf)

    def message_class(self, message):
        return self.registry.message_class(*self._message_key(message))


_default = ProtocolCodec()
IMPLEMENTATION = "pure" if _default.core.__name__.startswith("pybroker.codec._pure") else "compiled"

decode_request = _default.decode_request
encode_request = _default.encode_request
encode_response = _default.encode_response
encode_response_parts = _default.encode_response_parts
decode_response = _default.decode_response
encode = _default.encode
decode = _default.decode
message_class = _default.message_class
