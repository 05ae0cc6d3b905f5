"""kcat (Debian's, bundling librdkafka 2.0) against the in-process broker: produce and consume
every codec with keys, null values and headers, LogAppendTime, acks and idempotence, offsets
(-Q by timestamp, -o absolute/relative/s@timestamp) and metadata (-L). kcat consumes by assigning
partitions (-C, no -G), so no group coordinator is involved."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from broker_conftest import (CODECS, WAIT, Msg, assert_stored,
                             create_topic, fetch_batches, librdkafka_lz4_check, log_end_offset,
                             now_ms, unique, wait_until)

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed")


def kcat(*args, input=None, check=True):
    out = subprocess.run([KCAT, *map(str, args)], input=input, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=WAIT + 10)
    if check:
        assert out.returncode == 0, f"kcat {args} exited {out.returncode}: {out.stderr.decode()}"
    return out


def kcat_produce(bootstrap, topic, lines, *extra, partition=0):
    """One message per line `key<TAB>value` (value '' → null with -Z), same headers on all."""
    data = "".join(f"{k}\t{v}\n" for k, v in lines).encode()
    kcat("-P", "-b", bootstrap, "-t", topic, "-p", partition, "-K", "\t", "-Z", *extra, input=data)


def kcat_consume(bootstrap, topic, partition=0, offset="beginning", *extra):
    out = kcat("-C", "-b", bootstrap, "-t", topic, "-p", partition, "-o", offset, "-e", "-J", "-q",
               "-m", 10, *extra)
    return [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]


def lines_for(tag, n=25):
    # key '' is sent as an empty key: kcat has no null key with -K; value '' becomes null (-Z)
    return [(f"{tag}-k{i}", "" if i % 6 == 4 else f"{tag} value {i} " * (1 + i % 40))
            for i in range(n)]


def as_msgs(lines, headers):
    return [Msg(k.encode(), v.encode() if v else None, headers, None) for k, v in lines]


@pytest.mark.parametrize("codec", CODECS)
def test_codec_roundtrip_keys_nulls_headers(bootstrap, topic, codec):
    lines = lines_for(codec)
    kcat_produce(bootstrap, topic, lines, "-z", codec, "-H", "app=kcat", "-H", "codec=" + codec,
                 "-X", "linger.ms=20")
    got = kcat_consume(bootstrap, topic)
    assert [g["offset"] for g in got] == list(range(len(lines)))
    assert [(g["key"], g["payload"]) for g in got] == [(k, v or None) for k, v in lines]
    assert {tuple(g["headers"]) for g in got} == {("app", "kcat", "codec", codec)}
    assert {g["tstype"] for g in got} == {"create"}
    assert all(abs(g["ts"] - now_ms()) < 60_000 for g in got)
    hdrs = (("app", b"kcat"), ("codec", codec.encode()))
    assert_stored(bootstrap, topic, 0, as_msgs(lines, hdrs))
    librdkafka_lz4_check(bootstrap, codec)
    assert_stored(bootstrap, topic, 0, as_msgs(lines, hdrs), codec=codec)


def test_log_append_time_and_acks_and_idempotence(bootstrap):
    lat = unique("kcat-lat")
    create_topic(bootstrap, lat, configs={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    kcat_produce(bootstrap, lat, lines_for("lat", 5), "-z", "zstd")
    after = now_ms()
    got = kcat_consume(bootstrap, lat)
    assert {g["tstype"] for g in got} == {"logappend"}
    assert all(before - 5 <= g["ts"] <= after + 5 for g in got)

    for acks in ("0", "1", "all"):
        t = unique(f"kcat-acks{acks}")
        lines = lines_for(t, 12)
        kcat_produce(bootstrap, t, lines, "-X", f"acks={acks}")
        # acks=0: kcat is done once the request is sent; the append may land a moment later
        wait_until(lambda: log_end_offset(bootstrap, t) == 12, timeout=5, what=f"acks={acks}")
        assert_stored(bootstrap, t, 0, as_msgs(lines, ()))
    idem = unique("kcat-idem")
    kcat_produce(bootstrap, idem, lines_for("idem", 12), "-X", "enable.idempotence=true")
    batches = [b for b, _ in fetch_batches(bootstrap, idem, 0)]
    assert batches and batches[0].producer_id >= 0 and batches[0].base_sequence == 0


def test_offsets_query_and_start_positions(bootstrap, topic):
    create_topic(bootstrap, topic, partitions=2)
    lines = lines_for("q", 10)
    kcat_produce(bootstrap, topic, lines, partition=1)
    got = kcat_consume(bootstrap, topic, 1)
    stamps = [g["ts"] for g in got]

    def query(ts, partition=1):
        out = kcat("-Q", "-b", bootstrap, "-t", f"{topic}:{partition}:{ts}").stdout.decode()
        found = re.search(r"\[(\d+)\] offset (-?\d+)", out)
        assert found and int(found.group(1)) == partition, out
        return int(found.group(2))
    assert query(-2) == 0 and query(-1) == 10 and query(-1, partition=0) == 0
    assert query(stamps[0]) == 0 and query(stamps[-1] + 10_000) == -1

    assert [g["offset"] for g in kcat_consume(bootstrap, topic, 1, 7)] == [7, 8, 9]
    assert [g["offset"] for g in kcat_consume(bootstrap, topic, 1, -2)] == [8, 9]
    assert [g["key"] for g in kcat_consume(bootstrap, topic, 1, f"s@{stamps[-1]}")][-1] == "q-k9"


def test_metadata_listing(bootstrap, topic):
    create_topic(bootstrap, topic, partitions=3)
    md = json.loads(kcat("-L", "-b", bootstrap, "-t", topic, "-J").stdout)
    host, port = bootstrap.rsplit(":", 1)
    assert md["brokers"] == [{"id": 1, "name": f"{host}:{port}"}]
    assert md["controllerid"] == 1
    (t,) = md["topics"]
    assert t["topic"] == topic and [p["partition"] for p in t["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["isrs"] == [{"id": 1}] for p in t["partitions"])
