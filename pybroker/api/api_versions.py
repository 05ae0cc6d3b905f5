"""ApiVersions (key 18), versions 0-4.

Lists every API this broker serves with its version range (only versions we decode and answer).
An unknown higher version is answered by the dispatcher with a v0 body carrying
UNSUPPORTED_VERSION and our ApiVersions range (KIP-511); that path is `unsupported_response`.
v3+: ClientSoftwareName/Version must match Kafka's pattern, else INVALID_REQUEST (42).
No features are finalized yet (transaction.version is absent, so clients use transactions v1).
"""
import re

from pybroker.codec.messages import ApiVersionsResponse

API_KEY = 18
VERSIONS = (0, 4)
_SOFTWARE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42


def _keys(state):
    return [ApiVersionsResponse.ApiVersion(api_key=key, min_version=lo, max_version=hi)
            for key, (lo, hi) in sorted(state.advertised.items())]


def handle(ctx, req):
    if ctx.api_version >= 3 and not (_SOFTWARE.match(req.client_software_name or "")
                                     and _SOFTWARE.match(req.client_software_version or "")):
        return ApiVersionsResponse(error_code=INVALID_REQUEST, api_keys=[])
    ctx.conn.context["client_software"] = (getattr(req, "client_software_name", ""),
                                           getattr(req, "client_software_version", ""))
    return ApiVersionsResponse(error_code=0, api_keys=_keys(ctx.state), throttle_time_ms=0)


def unsupported_response(state):
    """The v0 body sent for an ApiVersions version we do not support."""
    lo, hi = VERSIONS
    return ApiVersionsResponse(error_code=UNSUPPORTED_VERSION, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=API_KEY, min_version=lo, max_version=hi)])
