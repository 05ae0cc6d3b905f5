"""The API table (pybroker/protocol/apis.py) built from the definitions."""
import json
import os
import subprocess
import sys
import time

import pytest

from pybroker.protocol import apis, schema
from pybroker.protocol.apis import API_BY_KEY, API_BY_NAME


def test_table_is_keyed_both_ways_and_consistent():
    defs = schema.load_all()
    requests = {name for (kind, name) in defs if kind == "request"}
    assert set(API_BY_NAME) == requests
    assert len(API_BY_KEY) == len(API_BY_NAME) == len(requests)
    for key, api in API_BY_KEY.items():
        assert api.key == key and API_BY_NAME[api.name] is api
        assert api.request == defs[("request", api.name)]
        assert api.response == defs[("response", api.name)]
        assert api.min_version <= api.max_version
        assert api.request.versions == api.response.versions == (api.min_version, api.max_version)
    assert list(API_BY_KEY) == sorted(API_BY_KEY)
    assert set(apis.HEADERS) == {"RequestHeader", "ResponseHeader"}
    assert set(apis.DATA) == {"ConsumerProtocolSubscription", "ConsumerProtocolAssignment"}


def test_table_agrees_with_the_spec_requests(shared_dir):
    spec_dir = shared_dir / "kafka-protocol-spec" / "message-4.3"
    extra = ["../message/ConsumerGroupHeartbeatRequest.json",  # KIP-848: not in the 4.3 folder
             "../message/ConsumerGroupDescribeRequest.json"]
    seen = set()
    for fname in sorted(os.listdir(spec_dir)) + extra:
        if not fname.endswith("Request.json"):
            continue
        with open(spec_dir / fname, encoding="utf-8") as fh:
            text = "\n".join(ln for ln in fh if not ln.lstrip().startswith("//"))
        spec = json.loads(text)
        api = API_BY_KEY[spec["apiKey"]]
        lo, _, hi = spec["validVersions"].partition("-")
        flex = spec["flexibleVersions"]
        assert api.name + "Request" == spec["name"]
        assert api.flexible_from == (None if flex == "none" else int(flex.rstrip("+")))
        if fname.startswith(".."):  # pre-4.0 trunk file: 4.0 made it stable, broker-only, v0-1
            assert api.min_version == int(lo) and api.max_version >= int(hi or lo)
            assert api.listeners == ("broker",) and not api.unstable
        else:
            assert (api.min_version, api.max_version) == (int(lo), int(hi or lo))
            assert api.listeners == tuple(spec["listeners"])
            assert api.unstable == bool(spec.get("latestVersionUnstable"))
        seen.add(api.key)
    assert seen == set(API_BY_KEY)


def test_header_versions():
    produce, api_versions = API_BY_NAME["Produce"], API_BY_NAME["ApiVersions"]
    assert produce.flexible_from == 9
    assert (produce.request_header_version(8), produce.response_header_version(8)) == (1, 0)
    assert (produce.request_header_version(9), produce.response_header_version(9)) == (2, 1)
    assert api_versions.request_header_version(3) == 2
    assert api_versions.response_header_version(3) == 0  # always v0 (KIP-511)
    sasl = API_BY_NAME["SaslHandshake"]
    assert sasl.flexible_from is None and not sasl.is_flexible(1)
    assert sasl.request_header_version(1) == 1


def test_versions_and_unstable():
    init = API_BY_NAME["InitProducerId"]
    assert init.unstable and init.max_stable_version == init.max_version - 1
    fetch = API_BY_KEY[1]
    assert not fetch.unstable and fetch.max_stable_version == fetch.max_version
    assert fetch.supports(fetch.min_version) and not fetch.supports(fetch.min_version - 1)
    assert not fetch.supports(fetch.max_version + 1)
    assert fetch.listeners == ("broker", "controller")


def _msg(kind, versions=(0, 3), flexible=(2, schema.MAX_VERSION), key=99, name="Frob"):
    return schema.Message(kind=kind, name=name, api_key=key, versions=versions, flexible=flexible)


@pytest.mark.parametrize("response, fragment", [
    (_msg("response", versions=(0, 2)), "key or versions"),
    (_msg("response", key=98), "key or versions"),
    (_msg("response", flexible=(3, schema.MAX_VERSION)), "flexible"),
])
def test_build_rejects_a_request_and_response_that_disagree(response, fragment):
    with pytest.raises(schema.SchemaError, match=fragment):
        apis.build({("request", "Frob"): _msg("request"), ("response", "Frob"): response})


def test_build_rejects_orphans_and_duplicate_keys():
    with pytest.raises(schema.SchemaError, match="without response"):
        apis.build({("request", "Frob"): _msg("request")})
    with pytest.raises(schema.SchemaError, match="without request"):
        apis.build({("response", "Frob"): _msg("response")})
    two = {(kind, name): _msg(kind, name=name)
           for kind in ("request", "response") for name in ("A", "B")}
    with pytest.raises(schema.SchemaError, match="api key 99"):
        apis.build(two)


def test_table_is_loaded_lazily_and_once():
    code = (
        "import pybroker.protocol.apis as a\n"
        "assert a.load.cache_info().currsize == 0, 'parsed at import'\n"
        "by_key = a.API_BY_KEY\n"
        "from pybroker.protocol.apis import API_BY_NAME\n"
        "assert by_key is a.load().by_key and API_BY_NAME is a.load().by_name\n"
        "assert a.load.cache_info().misses == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with pytest.raises(AttributeError):
        apis.NO_SUCH_TABLE


def test_parsing_every_definition_is_fast():
    best = min(_time(schema.load_all) for _ in range(3))
    assert best < 0.1, f"parsing all definitions took {best * 1e3:.1f} ms"


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
