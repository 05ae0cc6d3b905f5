"""Round trips for every (API, version), request and response, through the public codec API.

Values are drawn per program (test_protocol_gen.strategy): valid for the version (nullability,
tagged fields with non-default values, unknown tags). Each example is encoded as a whole frame,
decoded, compared with the original, and re-encoded byte for byte. Runs with whichever
implementation is loaded (PYBROKER_PURE=1 for the twin). Deterministic samples of every program
are checked the same way, so every field is exercised with a non-default and a null value.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybroker.codec import protocol
from test_protocol_gen import all_cases, case_id, program, sample, strategy

EXAMPLES = 6
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
REQUESTS = all_cases(("request",))
RESPONSES = all_cases(("response",))
OTHERS = all_cases(("header", "data"))


def api_key(name):
    return protocol.REGISTRY.messages[("request", name)].api_key


def request_round_trip(name, version, body, correlation_id, client_id):
    key = api_key(name)
    out = protocol.encode_request(key, version, correlation_id, client_id, body)
    assert int.from_bytes(out[:4], "big") == len(out) - 4
    header, got = protocol.decode_request(out[4:])
    assert (header.request_api_key, header.request_api_version) == (key, version)
    assert (header.correlation_id, header.client_id) == (correlation_id, client_id)
    assert got == body
    assert protocol.encode_request(key, version, correlation_id, client_id, got) == out


def response_round_trip(name, version, body, correlation_id):
    key = api_key(name)
    out = protocol.encode_response(key, version, correlation_id, body)
    assert int.from_bytes(out[:4], "big") == len(out) - 4
    header, got = protocol.decode_response(key, version, out[4:])
    assert header.correlation_id == correlation_id
    assert got == body
    assert protocol.encode_response(key, version, correlation_id, got) == out


@pytest.mark.parametrize("case", REQUESTS, ids=case_id)
@SETTINGS
@given(data=st.data(), correlation_id=st.integers(-2**31, 2**31 - 1), client_id=st.text(max_size=6))
def test_request_round_trip(case, data, correlation_id, client_id):
    body = data.draw(strategy(program(case)))
    request_round_trip(case[1], case[2], body, correlation_id, client_id)


@pytest.mark.parametrize("case", RESPONSES, ids=case_id)
@SETTINGS
@given(data=st.data(), correlation_id=st.integers(-2**31, 2**31 - 1))
def test_response_round_trip(case, data, correlation_id):
    body = data.draw(strategy(program(case)))
    response_round_trip(case[1], case[2], body, correlation_id)


@pytest.mark.parametrize("case", OTHERS, ids=case_id)
@SETTINGS
@given(data=st.data())
def test_header_and_data_round_trip(case, data):
    prog = program(case)
    obj = data.draw(strategy(prog))
    out = protocol.encode(prog.cls, case[2], obj)
    got = protocol.decode(prog.cls, case[2], out)
    assert got == obj
    assert protocol.encode(prog.cls, case[2], got) == out


@pytest.mark.parametrize("case", REQUESTS + RESPONSES, ids=case_id)
@pytest.mark.parametrize("variant", [0, 1])
def test_sample_round_trip(case, variant):
    body = sample(program(case), variant)
    if case[0] == "request":
        request_round_trip(case[1], case[2], body, 7, "client")
    else:
        response_round_trip(case[1], case[2], body, 7)
