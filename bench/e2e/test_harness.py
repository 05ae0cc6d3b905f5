"""Tests of the benchmark harness's own parts (no broker needed): the perf-tool parsers, the
/proc sampler, the start-up probe against a fake server, percentiles, the rate policy and the
report's ratios. Run: ``python -m pytest bench/e2e``."""
from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from e2e import java_perf, matrix, procstat, rdkafka_driver, report, rounds
from e2e.targets import Target, TargetStartError
import kafka_ref

BENCH = pathlib.Path(__file__).resolve().parents[1]

# Real output of kafka-producer-perf-test 4.4.0 (--warmup-records 10000) on this machine.
PRODUCER_OUT = """\
Warmup first 10000 records. Steady state results will print after the complete test summary.
100000 records sent, 25087.807326 records/sec (24.50 MB/sec), 606.87 ms avg latency, 895.00 ms max latency, 621 ms 50th, 821 ms 95th, 867 ms 99th, 886 ms 99.9th.
90000 steady state records sent, 33198.081889 records/sec (32.42 MB/sec), 660.77 ms avg latency, 895.00 ms max latency, 631 ms 50th, 826 ms 95th, 868 ms 99th, 886 ms 99.9th.
"""
CONSUMER_OUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-26 16:23:44:806, 2026-11-26 16:23:46:600, 97.6563, 54.4349, 100000, 55741.3601, 953, 841, 116.1192, 118906.0642
"""


# --- parsers -------------------------------------------------------------------------------------

def test_parse_producer_total_and_steady():
    r = java_perf.parse_producer(PRODUCER_OUT)
    assert r["total"]["messages"] == 100000
    assert r["total"]["msgs_per_s"] == pytest.approx(25087.807326)
    assert r["total"]["mb_per_s"] == 24.50
    assert r["steady"]["messages"] == 90000
    assert r["steady"]["msgs_per_s"] == pytest.approx(33198.081889)
    assert r["steady"]["ack_latency_p99_ms"] == 868
    assert r["steady"]["ack_latency_p999_ms"] == 886


def test_parse_producer_without_warmup_has_no_steady_line():
    r = java_perf.parse_producer(PRODUCER_OUT.splitlines()[1])
    assert r["steady"] is None and r["total"]["messages"] == 100000


@pytest.mark.parametrize("text", ["", "Exception in thread main: TimeoutException",
                                  "100000 records sent, fast"])
def test_parse_producer_rejects_output_without_summary(text):
    with pytest.raises(java_perf.ParseError):
        java_perf.parse_producer(text)


def test_parse_consumer():
    r = java_perf.parse_consumer(CONSUMER_OUT)
    assert r["messages"] == 100000
    assert r["msgs_per_s"] == pytest.approx(55741.3601)
    assert r["fetch_msgs_per_s"] == pytest.approx(118906.0642)
    assert r["rebalance_ms"] == 953 and r["fetch_ms"] == 841
    assert r["timed_out"] is False


def test_parse_consumer_flags_early_exit():
    out = "WARNING: Exiting before consuming the expected number of records: timeout (10000 ms) exceeded.\n"
    r = java_perf.parse_consumer(out + CONSUMER_OUT.replace("100000, 55741", "512, 55741"))
    assert r["timed_out"] is True and r["messages"] == 512


@pytest.mark.parametrize("text", ["", java_perf.CONSUMER_HEADER, java_perf.CONSUMER_HEADER + "\n1, 2, 3"])
def test_parse_consumer_rejects_incomplete_output(text):
    with pytest.raises(java_perf.ParseError):
        java_perf.parse_consumer(text)


def test_producer_args_carry_the_cell_settings():
    cell = matrix.Cell(1024, 16, "all", "lz4")
    args = java_perf.producer_args("127.0.0.1:1", "t", 5000, 1024, cell.producer_props(), 500)
    joined = " ".join(args)
    assert "--num-records 5000 --record-size 1024 --throughput -1 --warmup-records 500" in joined
    for prop in ("acks=all", "compression.type=lz4", "linger.ms=5", "batch.size=1048576"):
        assert prop in args


# --- driver helpers ------------------------------------------------------------------------------

def test_percentiles_nearest_rank():
    values = list(range(1, 1001))
    assert rdkafka_driver.percentiles(values, [0.0, 0.5, 0.99, 0.999, 1.0]) == [1, 500, 990, 999, 1000]
    assert rdkafka_driver.percentiles([7], [0.5, 0.999]) == [7, 7]
    assert rdkafka_driver.percentiles([], [0.5]) == [None]


def test_payload_pool_is_random_capital_letters_of_the_size():
    pool = rdkafka_driver.payload_pool(100, count=8)
    assert len(pool) == 8 and all(len(p) == 100 for p in pool)
    assert len(set(pool)) == 8
    assert set(b"".join(pool)) <= set(range(65, 91))


def test_driver_rejects_unknown_options():
    with pytest.raises(SystemExit):
        rdkafka_driver.build_parser().parse_args(["produce", "--bootstrap", "x", "--topic", "t",
                                                  "--messages", "1", "--size", "1", "--acks", "2"])


def test_messages_per_run_follow_budget_and_cap():
    p = matrix.quick_profile()
    assert p.messages(matrix.Cell(1024, 1, "1", "none")) == (1 << 30) // 1024
    assert p.messages(matrix.Cell(100, 1, "1", "none")) == 2_000_000
    assert {c.id for c in p.cells} >= {"1024B-1p-acks1-none", "1024B-16p-acks1-none"}
    assert len(matrix.full_profile().cells) == 36


# --- /proc sampling ------------------------------------------------------------------------------

BUSY_CHILD = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.6: pass\n"
BIG_CHILD = "import time\nb=bytearray(200<<20)\nfor i in range(0,len(b),4096): b[i]=1\ntime.sleep(1.0)\n"


def test_tree_sampler_counts_cpu_of_a_grandchild():
    # parent (waits) -> child (burns 0.6 s CPU): the tree total must see the child's time, both
    # while the child runs and after the parent reaped it (cutime)
    script = (f"import subprocess,sys; subprocess.run([sys.executable,'-c',{BUSY_CHILD!r}]); "
              "print('done', flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        with procstat.TreeSampler(parent.pid, interval=0.02) as s:
            assert parent.stdout.readline().strip() == "done"
    finally:
        parent.stdin.close()
        parent.wait(30)
    assert 0.5 <= s.cpu_seconds <= 5.0


def test_tree_sampler_sees_peak_rss_of_a_child():
    proc = subprocess.Popen([sys.executable, "-c", BIG_CHILD])
    with procstat.TreeSampler(proc.pid, interval=0.02) as s:
        proc.wait(30)
    assert s.peak_rss_bytes >= 200 << 20
    assert s.samples >= 5


def test_descendants_and_parent_with_a_parenthesised_comm(tmp_path):
    weird = tmp_path / "a) b (c"
    shutil.copy(shutil.which("sleep"), weird)
    proc = subprocess.Popen([str(weird), "5"])
    try:
        time.sleep(0.1)
        assert procstat.parent_of(proc.pid) == os.getpid()
        assert proc.pid in procstat.descendants(os.getpid())
        assert procstat.status_kib(proc.pid, "VmRSS") > 0
    finally:
        proc.kill()
        proc.wait()


def test_gone_process_reads_as_zero():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert procstat.cpu_seconds(proc.pid) == 0.0
    assert procstat.status_kib(proc.pid, "VmRSS") == 0
    assert procstat.parent_of(proc.pid) is None


# --- start-up probe ------------------------------------------------------------------------------

# Answers ApiVersions v0 like a broker would at the header level: i32 size, i32 correlation id,
# then an (empty, irrelevant here) body -- after `delay` seconds, or exits at once when delay < 0.
FAKE_BROKER = textwrap.dedent("""
    import socket, struct, sys, time
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    if delay < 0:
        sys.exit(3)
    time.sleep(delay)
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port)); srv.listen(8)
    while True:
        conn, _ = srv.accept()
        size = struct.unpack(">i", conn.recv(4))[0]
        req = b""
        while len(req) < size:
            req += conn.recv(size - len(req))
        corr = req[4:8]
        conn.sendall(struct.pack(">i", 6) + corr + b"\\x00\\x00")
        conn.close()
""")


class FakeTarget(Target):
    name = "fake"

    def __init__(self, delay: float, **kwargs):
        super().__init__(**kwargs)
        self.delay = delay

    def version(self) -> str:
        return "0"

    def _spawn(self) -> None:
        self.command = [sys.executable, "-c", FAKE_BROKER, str(self.port), str(self.delay)]
        self.process = subprocess.Popen(self.command)


def test_startup_is_time_to_first_answer():
    t = FakeTarget(0.4).start()
    try:
        assert 0.4 <= t.startup_seconds < 5.0
        assert t.alive() and t.bootstrap == f"127.0.0.1:{t.port}"
    finally:
        t.stop()
    assert not t.alive() and t.workdir is None


def test_start_reports_a_broker_that_exits():
    with pytest.raises(TargetStartError, match="exited with code 3"):
        FakeTarget(-1).start()


def test_start_gives_up_after_the_timeout():
    t = FakeTarget(30, start_timeout=0.5)
    with pytest.raises(TargetStartError, match="no answer"):
        t.start()
    assert not t.alive()


# --- rate policy and report ----------------------------------------------------------------------

def _run_matrix_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("run_matrix", BENCH / "run_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workloads_narrow_what_each_cell_runs(monkeypatch):
    rm = _run_matrix_module()
    profile = rm.select(matrix.PROFILES["quick"](), rm.parse_args(["--workloads", "latency,rd_produce"]))
    assert profile.workloads == ("rd_produce", "latency")          # the matrix's own order
    with pytest.raises(SystemExit, match="unknown workloads"):
        rm.select(matrix.PROFILES["quick"](), rm.parse_args(["--workloads", "latency,java"]))
    created, ran = [], []
    monkeypatch.setattr(matrix.rdkafka_driver, "create_topic", lambda b, t, p: created.append(t) or 0.0)
    monkeypatch.setattr(matrix.rdkafka_driver, "delete_topic", lambda b, t: None)
    monkeypatch.setattr(matrix, "sampled", lambda target, fn: fn())
    monkeypatch.setattr(matrix, "log", lambda text: None)
    monkeypatch.setattr(matrix, "summary", lambda name, r: "")
    for name in matrix.WORKLOADS:
        monkeypatch.setattr(matrix.CellRunner, name, lambda self, n=name: ran.append(n) or {"ok": True})

    class FakeTarget:
        bootstrap, name = "127.0.0.1:1", "fake"

        def alive(self):
            return True
    runner = matrix.CellRunner(FakeTarget(), profile, profile.cells[0], None, None)
    runner.run()
    assert ran == ["rd_produce", "latency"]
    assert created == [runner.topic("rd"), runner.topic("latency")]


def test_rate_policy_half_of_kafka_capped_and_fallback():
    rm = _run_matrix_module()
    cell = matrix.Cell(1024, 1, "1", "none")
    args = rm.parse_args(["--e2e-rate-cap", "30000", "--e2e-fallback-rate", "1234"])
    results = {"kafka": {"cells": {cell.id: {"rd_produce": {"ok": True, "msgs_per_s": 40000.0}}}}}
    assert rm.RatePolicy(args, results)("pybroker")(cell, {})[0] == 20000.0
    policy = rm.RatePolicy(args, results)
    assert policy("kafka")(cell, {"rd_produce": {"ok": True, "msgs_per_s": 100000.0}})[0] == 30000.0
    # once derived, a cell's rate holds for every target and round (pybroker runs first in even rounds)
    results.clear()
    assert policy("pybroker")(cell, {})[0] == 30000.0
    assert policy("kafka")(cell, {"rd_produce": {"ok": True, "msgs_per_s": 2000.0}})[0] == 30000.0
    # a fallback is not kept: Kafka's figure may still come
    assert policy("pybroker")(matrix.Cell(100, 1, "1", "none"), {})[0] == 1234
    assert policy("kafka")(matrix.Cell(100, 1, "1", "none"),
                           {"rd_produce": {"ok": True, "msgs_per_s": 5000.0}})[0] == 2500.0
    fixed = rm.RatePolicy(rm.parse_args(["--e2e-rate", "777"]), results)
    assert fixed("pybroker")(cell, {}) == (777, "fixed")


def _fake_data():
    cell = "1024B-16p-acks1-none"

    def cell_result(rate, p99, rss, ok=True):
        broker = {"cpu_seconds": 1.0, "peak_rss_bytes": rss}
        return {"messages": 1000,
                "rd_produce": {"ok": ok, "msgs_per_s": rate, "mb_per_s": rate / 1024, "broker": broker,
                               "command": "python produce", "error": None if ok else "boom: no leader"},
                "latency": {"ok": True, "p50_ms": 1.0, "p99_ms": p99, "p999_ms": p99 * 2, "achieved_rate": 10.0,
                            "target_rate": 10.0, "rate_basis": "fixed", "measured": 9, "warmup_excluded": 1,
                            "cdf": [[0.5, 1.0], [1.0, p99]], "broker": broker, "command": "python latency"}}

    return {"profile": "quick", "started": "s", "finished": "f", "duration_seconds": 1.0, "command": "c",
            "machine": {"cpu": "x", "cores": 2, "ram_gib": 1, "kernel": "k", "python": "3", "java": "j",
                        "confluent_kafka": "2", "librdkafka": "2", "loadavg_start": [1.0, 1.0, 1.0]},
            "loadavg_end": [1.0, 1.0, 1.0], "cells": [cell],
            "settings": {"byte_budget": 1 << 20, "max_messages": 1000, "time_limit": 1, "latency_seconds": 1,
                         "warmup_messages": 10, "rate_policy": "fixed"},
            "targets": {"kafka": {"version": "4.4.0", "startup_seconds": 8.0, "cells": {cell: cell_result(
                            100000.0, 10.0, 400 << 20)}},
                        "pybroker": {"version": "0.1.0", "startup_seconds": 0.25, "cells": {cell: cell_result(
                            50000.0, 5.0, 50 << 20)}}}}


def test_report_ratios_and_goals():
    text = report.render(_fake_data())
    assert "| librdkafka produce (msg/s) ↑ | 100,000 | 50,000 | 0.50× |" in text
    assert "| e2e latency p99 (ms) ↓ | 10.0 | 5.00 | 0.50× |" in text
    assert "| produce throughput, 1 KiB, 16 partitions, acks=1 (librdkafka) | ≥ 1.0 | 0.50× | no |" in text
    assert "| peak RSS during produce, 1 KiB, 16 partitions | ≤ 0.25 | 0.12× | yes |" in text
    assert "| start-up to first answered request | ≤ 0.5 s | 0.25 s | yes |" in text
    assert "## Failures\n\nNone." in text


def test_report_sums_up_each_workload_across_the_matrix():
    data = _fake_data()
    other = "100B-1p-acks1-none"
    data["cells"].append(other)
    for name, rate, p99 in (("kafka", 1000.0, 4.0), ("pybroker", 8000.0, 2.0)):
        cell = data["targets"][name]["cells"]["1024B-16p-acks1-none"]
        data["targets"][name]["cells"][other] = {
            "rd_produce": dict(cell["rd_produce"], msgs_per_s=rate),
            "latency": dict(cell["latency"], p99_ms=p99)}
    text = report.render(data)
    # produce: 0.5x and 8x -> geometric mean 2x, one cell worse; p99: 0.5x and 0.5x
    assert "| librdkafka produce msg/s ↑ | 2 | 2.00× | 1 | 1024B-16p-acks1-none (0.50×) |" in text
    assert "| e2e latency p99 ↓ | 2 | 0.50× | 0 | 1024B-16p-acks1-none (0.50×) |" in text
    assert "java consumer-perf-test, fetch phase msg/s" not in text.split("## Results per cell")[0]


def test_report_adds_tansu_columns_only_when_it_ran():
    data = _fake_data()
    assert "Tansu/Kafka" not in report.render(data)
    tansu = {"version": "tansu 0.6.0 (memory storage)", "startup_seconds": 0.01, "exit_code": 0,
             "cells": {"1024B-16p-acks1-none": data["targets"]["pybroker"]["cells"]["1024B-16p-acks1-none"]}}
    data["targets"]["tansu"] = json.loads(json.dumps(tansu))
    data["targets"]["tansu"]["cells"]["1024B-16p-acks1-none"]["rd_produce"]["msgs_per_s"] = 200000.0
    text = report.render(data)
    assert "| metric | Kafka | pybroker | pybroker/Kafka | Tansu | Tansu/Kafka |" in text
    assert "| librdkafka produce (msg/s) ↑ | 100,000 | 50,000 | 0.50× | 200,000 | 2.00× |" in text
    assert "| Tansu | tansu 0.6.0 (memory storage) |" in text
    # the goals stay pybroker / Kafka
    assert "| produce throughput, 1 KiB, 16 partitions, acks=1 (librdkafka) | ≥ 1.0 | 0.50× | no |" in text


def test_report_lists_a_failed_workload_and_leaves_its_ratio_out():
    data = _fake_data()
    data["targets"]["pybroker"]["cells"]["1024B-16p-acks1-none"]["rd_produce"].update(ok=False, error="boom: no leader")
    text = report.render(data)
    assert "| librdkafka produce (msg/s) ↑ | 100,000 | — | — |" in text
    assert "**pybroker 1024B-16p-acks1-none rd_produce**: `boom: no leader`" in text


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")  # the bench extra; CI installs the test extra only
    made = report.plot_all(_fake_data(), tmp_path)
    assert [p.name for p in made] == ["latency_cdf.png"]  # one cell: no throughput curve to draw
    assert made[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_marks_short_runs_and_a_killed_shutdown():
    data = _fake_data()
    data["targets"]["kafka"]["cells"]["1024B-16p-acks1-none"]["rd_produce"]["seconds"] = 0.3
    data["targets"]["pybroker"]["cells"]["1024B-16p-acks1-none"]["rd_produce"]["seconds"] = 2.0
    data["targets"]["pybroker"].update(exit_code=-9, broker_log_tail="ValueError: fd -1")
    text = report.render(data)
    assert "| librdkafka produce (msg/s) ↑ | 100,000† | 50,000 | 0.50× |" in text
    assert "**pybroker shutdown**: did not exit within 30 s of SIGTERM" in text
    assert "ValueError: fd -1" in text


def test_report_lists_an_unclean_exit_but_not_the_jvms_143():
    data = _fake_data()
    data["targets"]["kafka"].update(exit_code=143)
    data["targets"]["pybroker"].update(exit_code=1, broker_log_tail="Traceback\nFileNotFoundError: x.snapshot.tmp")
    text = report.render(data)
    assert "**pybroker shutdown**: exited with code 1 after SIGTERM" in text
    assert "FileNotFoundError: x.snapshot.tmp" in text
    assert "kafka shutdown" not in text


# --- the driver against a real (in-process) broker -----------------------------------------------

@pytest.fixture(scope="module")
def broker():
    testing = pytest.importorskip("pybroker.testing")
    with testing.Broker() as b:
        yield b.bootstrap_servers
        rdkafka_driver.forget_admin(b.bootstrap_servers)


def _driver(*args, timeout=120) -> dict:
    import json
    out = subprocess.run([sys.executable, str(matrix.DRIVER), *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_driver_produce_consume_latency_round_trip(broker):
    rdkafka_driver.create_topic(broker, "harness-rt", 4)
    produced = _driver("produce", "--bootstrap", broker, "--topic", "harness-rt", "--messages", 3000,
                       "--size", 200, "--acks", "all", "--compression", "lz4", "--time-limit", 30)
    assert produced["messages"] == 3000 and produced["errors"] == 0 and not produced["timed_out"]
    assert produced["bytes"] == 600_000 and produced["msgs_per_s"] > 0
    consumed = _driver("consume", "--bootstrap", broker, "--topic", "harness-rt", "--messages", 3000,
                       "--size", 200, "--time-limit", 30)
    assert consumed["messages"] == 3000 and consumed["partitions"] == 4 and not consumed["timed_out"]
    # asking for more than was written stops at the time limit and says so
    short = _driver("consume", "--bootstrap", broker, "--topic", "harness-rt", "--messages", 3001,
                    "--size", 200, "--time-limit", 2)
    assert short["messages"] == 3000 and short["timed_out"] is True


def test_driver_counts_failed_deliveries(broker):
    from confluent_kafka.admin import NewTopic
    admin = rdkafka_driver.admin_for(broker)
    topic = NewTopic("harness-too-large", 1, 1, config={"max.message.bytes": "1000"})
    admin.create_topics([topic])["harness-too-large"].result(30)
    produced = _driver("produce", "--bootstrap", broker, "--topic", "harness-too-large",
                       "--messages", 50, "--size", 2000, "--time-limit", 30)
    assert produced["errors"] == 50 and produced["messages"] == 0 and produced["timed_out"]
    assert "MSG_SIZE_TOO_LARGE" in produced["first_error"]


def test_driver_latency_at_a_fixed_rate(broker):
    rdkafka_driver.create_topic(broker, "harness-lat", 1)
    r = _driver("latency", "--bootstrap", broker, "--topic", "harness-lat", "--size", 64, "--rate", 400,
                "--duration", 2, "--warmup", 0.5)
    assert r["sent"] == 800 and r["received"] == 800 and not r["timed_out"]
    assert 0 < r["warmup_excluded"] < 800 and r["measured"] == 800 - r["warmup_excluded"]
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"] <= r["max_ms"] < 5000
    assert 300 <= r["achieved_rate"] <= 420
    assert r["cdf"][-1] == [1.0, r["max_ms"]]
    # per second of sending: every message counted once, the worst second holds the maximum
    seconds = r["per_second"]
    assert [s[0] for s in seconds][:2] == [0, 1] and sum(s[1] for s in seconds) == 800
    assert max(s[3] for s in seconds) >= round(r["max_ms"], 2) and all(0 < s[2] <= s[3] for s in seconds)


def test_cluster_ids_never_start_with_a_dash(monkeypatch):
    # the first 16 random bytes encode to "-..." (0xf8 -> '-' in URL-safe base64); the second do not
    draws = iter([b"\xf8" + bytes(15), b"\x01" * 16])
    monkeypatch.setattr(kafka_ref.os, "urandom", lambda n: next(draws))
    cid = kafka_ref.random_cluster_id()
    assert not cid.startswith("-") and len(cid) == 22
    assert base64.urlsafe_b64decode(cid + "==") == b"\x01" * 16


def test_pybroker_target_runs_kafkas_reference_settings():
    # every setting the Kafka reference sets that pybroker knows, beyond where to listen and
    # store, must have the same value on the pybroker target (its default or an override)
    from e2e.targets import PybrokerTarget
    from pybroker.config import KEYS, BrokerConfig

    placement = {"process.roles", "node.id", "listeners", "advertised.listeners",
                 "listener.security.protocol.map", "log.dirs", "log.dir"}
    ref = kafka_ref.KafkaReference(libs=pathlib.Path("."), workdir="/nonexistent")
    target = PybrokerTarget()
    target.port, target.workdir = 1, pathlib.Path("/nonexistent")
    ours = BrokerConfig(target.server_overrides())
    shared = {k: v for k, v in ref.server_properties().items() if k in KEYS and k not in placement}
    assert "group.initial.rebalance.delay.ms" in shared
    for key, value in shared.items():
        assert ours[key] == KEYS[key].validate(value), key


# --- rounds ---------------------------------------------------------------------------------------

def _round(rate, p99, cpu, exit_code=0, startup=0.3):
    cell = {"messages": 10,
            "rd_produce": {"ok": True, "msgs_per_s": rate, "broker": {"cpu_seconds": cpu}},
            "latency": {"ok": True, "p99_ms": p99}}
    return {"name": "pybroker", "startup_seconds": startup, "exit_code": exit_code,
            "cells": {"c": cell}}


def test_rounds_alternate_the_order_of_targets():
    assert rounds.order(["kafka", "pybroker"], 0) == ["kafka", "pybroker"]
    assert rounds.order(["kafka", "pybroker"], 1) == ["pybroker", "kafka"]
    assert rounds.order(["kafka", "pybroker", "tansu"], 2) == ["kafka", "pybroker", "tansu"]


def test_rounds_keep_the_median_run_whole():
    merged = rounds.merge_target([_round(100.0, 9.0, 1.0, startup=0.2), _round(300.0, 3.0, 3.0, startup=0.4),
                                  _round(200.0, 5.0, 2.0, startup=0.3)])
    produce = merged["cells"]["c"]["rd_produce"]
    # the median by msgs/s is the 200 run, and its CPU comes with it (not a median of CPUs)
    assert (produce["msgs_per_s"], produce["broker"]["cpu_seconds"]) == (200.0, 2.0)
    assert produce["rounds"] == {"values": [100.0, 200.0, 300.0], "median": 200.0, "of": 3}
    assert merged["cells"]["c"]["latency"]["p99_ms"] == 5.0
    assert merged["startup_seconds"] == 0.3


def test_rounds_skip_failed_runs_and_show_any_bad_exit():
    runs = [_round(100.0, 9.0, 1.0), _round(300.0, 3.0, 3.0, exit_code=-9), _round(200.0, 5.0, 2.0)]
    runs[2]["cells"]["c"]["rd_produce"] = {"ok": False, "error": "boom"}
    merged = rounds.merge_target(runs)
    # of two good runs, the worse: the lower rate, the higher p99
    assert merged["cells"]["c"]["rd_produce"]["msgs_per_s"] == 100.0
    two = rounds.merge_target(runs[:2])
    assert two["cells"]["c"]["latency"]["p99_ms"] == 9.0
    assert merged["exit_code"] == -9 and merged["exit_codes"] == [0, -9, 0]
    only_bad = rounds.median_run([{"ok": False, "error": "x"}, None], "rd_produce")
    assert only_bad == {"ok": False, "error": "x"}


def test_report_shows_each_rounds_goal_ratio():
    data = _fake_data()
    second = json.loads(json.dumps(data["targets"]))
    second["pybroker"]["cells"]["1024B-16p-acks1-none"]["rd_produce"]["msgs_per_s"] = 150000.0
    data["rounds"], data["repeat"] = [data["targets"], second], 2
    text = report.render(data)
    assert "median of 2 rounds" in text
    assert "| produce throughput, 1 KiB, 16 partitions, acks=1 (librdkafka) | ≥ 1.0 | 0.50× | no | 0.50×, 1.50× |" in text
