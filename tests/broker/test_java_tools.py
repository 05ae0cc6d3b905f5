"""The Java client, through Kafka's own CLI tools (kafka-clients/kafka-tools 4.4 from Maven
Central), against the in-process broker: kafka-topics --create/--describe/--list/--alter/--delete,
kafka-console-producer (every codec, keys, headers, null values, acks 0/1/-1, idempotent by
default) and kafka-console-consumer (assigned partitions and offsets, no group), kafka-configs
--describe, kafka-get-offsets; cross-client with confluent-kafka in both directions.

A JVM takes seconds to start, so every tool runs in ONE JVM: a small launcher (ToolBatch, compiled
once and cached) runs the tools' main classes one after another from a step file, with Kafka's
Exit procedures replaced so a tool's exit ends only its step (its shutdown hooks run then); each
step's stdout, stderr and exit code go to files. Skips cleanly when java/javac or the jars are
missing (ci/fetch_kafka).
"""
from __future__ import annotations

import hashlib
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from broker_conftest import (CODECS, Msg, assert_partition_matches, assert_stored, fetch_batches,
                             fetch_records, log_end_offset, now_ms, unique,
                             wait_until)

pytestmark = pytest.mark.java
kafka_tools = pytest.importorskip("kafka_tools")

TOOL_BATCH = r"""
import java.io.*;
import java.lang.reflect.InvocationTargetException;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import org.apache.kafka.common.utils.internals.Exit;

/** Runs Kafka CLI main classes one after another in this JVM. Step file lines (tab-separated):
 *  name, main class, stdin file or "-", args... For each step writes <out>/<name>.{out,err,rc}. */
public class ToolBatch {
    static final class ExitCalled extends RuntimeException {
        ExitCalled(int code) { super("exit " + code); }
    }
    static volatile Integer exitCode;

    public static void main(String[] argv) throws Exception {
        Path out = Paths.get(argv[1]);
        Exit.Procedure record = (code, msg) -> {
            if (exitCode == null) exitCode = code;
            throw new ExitCalled(code);
        };
        Exit.setExitProcedure(record);
        Exit.setHaltProcedure(record);
        // a tool's shutdown hooks (e.g. the console producer's close-and-flush) run when its
        // step ends, as they would when its own JVM exits
        List<Runnable> hooks = new ArrayList<>();
        Exit.setShutdownHookAdder((name, hook) -> hooks.add(hook));
        PrintStream realOut = System.out, realErr = System.err;
        InputStream realIn = System.in;
        for (String line : Files.readAllLines(Paths.get(argv[0]), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            ByteArrayOutputStream bo = new ByteArrayOutputStream();
            ByteArrayOutputStream be = new ByteArrayOutputStream();
            int rc = 0;
            exitCode = null;
            long t0 = System.nanoTime();
            System.setOut(new PrintStream(bo, true, "UTF-8"));
            System.setErr(new PrintStream(be, true, "UTF-8"));
            System.setIn(f[2].equals("-") ? new ByteArrayInputStream(new byte[0])
                                          : new FileInputStream(f[2]));
            try {
                Class.forName(f[1]).getMethod("main", String[].class)
                     .invoke(null, (Object) Arrays.copyOfRange(f, 3, f.length));
            } catch (InvocationTargetException e) {
                if (!(e.getCause() instanceof ExitCalled)) {
                    rc = 99;
                    e.getCause().printStackTrace();
                }
            } catch (Throwable e) {
                rc = 98; e.printStackTrace();
            } finally {
                for (Runnable hook : hooks) {
                    Thread t = new Thread(hook);
                    t.start();
                    t.join(15000);
                }
                hooks.clear();
                System.out.flush(); System.err.flush();
                System.setOut(realOut); System.setErr(realErr); System.setIn(realIn);
            }
            if (exitCode != null) rc = exitCode;
            Files.write(out.resolve(f[0] + ".out"), bo.toByteArray());
            Files.write(out.resolve(f[0] + ".err"), be.toByteArray());
            Files.write(out.resolve(f[0] + ".rc"), Integer.toString(rc).getBytes());
            realErr.printf("step %s rc=%d %.2fs%n", f[0], rc, (System.nanoTime() - t0) / 1e9);
        }
        System.exit(0);
    }
}
"""

CONSOLE_CONSUMER = "kafka-console-consumer"
NULL = "<NULL>"
N = 12


def _tool_batch_dir(libs: pathlib.Path) -> pathlib.Path:
    """The compiled launcher, cached by source and Kafka version."""
    if shutil.which("javac") is None:
        pytest.skip("javac is not on PATH")
    digest = hashlib.sha1((TOOL_BATCH + str(libs)).encode()).hexdigest()[:12]
    target = pathlib.Path.home() / ".cache" / "pybroker" / f"toolbatch-{digest}"
    if not (target / "ToolBatch.class").is_file():
        src = target / "src"
        src.mkdir(parents=True, exist_ok=True)
        (src / "ToolBatch.java").write_text(TOOL_BATCH)
        subprocess.run(["javac", "-cp", str(libs / "*"), "-d", str(target),
                        str(src / "ToolBatch.java")], check=True, timeout=120,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return target


class Steps:
    """Builds the step file: step(name, tool, *args, stdin=lines)."""

    def __init__(self, workdir: pathlib.Path):
        self.dir = workdir
        self.lines = []

    def step(self, name, tool, *args, stdin=None):
        stdin_path = "-"
        if stdin is not None:
            p = self.dir / f"{name}.stdin"
            p.write_text("".join(line + "\n" for line in stdin))
            stdin_path = str(p)
        fields = [name, kafka_tools.TOOLS[tool], stdin_path, *map(str, args)]
        assert not any("\t" in f or "\n" in f for f in fields), fields
        self.lines.append("\t".join(fields))


class Results:
    def __init__(self, outdir: pathlib.Path, log: str):
        self.dir = outdir
        self.log = log

    def __call__(self, name):
        """(rc, stdout, stderr) of one step; fails when the step never ran."""
        rc = self.dir / f"{name}.rc"
        assert rc.is_file(), f"step {name} did not run; launcher log:\n{self.log[-3000:]}"
        return (int(rc.read_text()), (self.dir / f"{name}.out").read_text(),
                (self.dir / f"{name}.err").read_text())

    def ok(self, name):
        rc, out, err = self(name)
        assert rc == 0, f"{name} exited {rc}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}"
        return out


def producer_lines(tag):
    """Console producer input `headers<TAB>key<TAB>value` (parse.headers, parse.key); NULL marks a
    null value, or no headers; every third line has none."""
    out, msgs = [], []
    for i in range(N):
        value = NULL if i % 5 == 2 else f"{tag} java value {i} " * (1 + i % 30)
        hdrs = () if i % 3 == 0 else (("src", b"java"), ("i", str(i).encode()))
        htext = ",".join(f"{k}:{v.decode()}" for k, v in hdrs) or NULL  # NULL: no headers
        out.append(f"{htext}\t{tag}-k{i}\t{value}")
        msgs.append(Msg(f"{tag}-k{i}".encode(), None if value == NULL else value.encode(), hdrs,
                        None))
    return out, msgs


PRODUCER_PROPS = ["--reader-property", "parse.key=true", "--reader-property", "parse.headers=true",
                  "--reader-property", f"null.marker={NULL}", "--producer-property", "linger.ms=20"]
CONSUMER_PROPS = [f"--formatter-property={p}" for p in (
    "print.key=true", "print.offset=true", "print.headers=true", "print.timestamp=true",
    "print.partition=true", f"null.literal={NULL}", "key.separator=|")]


def consume_step(steps, name, bs, topic, partition, count, offset="earliest"):
    steps.step(name, CONSOLE_CONSUMER, "--bootstrap-server", bs, "--topic", topic,
               "--partition", partition, "--offset", offset, "--max-messages", count,
               "--timeout-ms", 5000, "--consumer-property", "fetch.max.wait.ms=50", *CONSUMER_PROPS)


def parse_consumed(out):
    """Console consumer lines `CreateTime:ts|Partition:p|Offset:o|headers|key|value`."""
    rows = []
    for line in out.splitlines():
        if not re.match(r"^(CreateTime|LogAppendTime):", line):
            continue
        ts, part, off, hdrs, key, value = line.split("|", 5)
        ts_type, ts = ts.split(":")
        headers = () if hdrs == "NO_HEADERS" else tuple(
            (k, v.encode()) for k, v in (h.split(":", 1) for h in hdrs.split(",")))
        rows.append({"ts_type": ts_type, "ts": int(ts), "partition": int(part.split(":")[1]),
                     "offset": int(off.split(":")[1]), "headers": headers,
                     "key": None if key == NULL else key.encode(),
                     "value": None if value == NULL else value.encode()})
    return rows


@pytest.fixture(scope="module")
def java(broker, tmp_path_factory):
    """Prepares topics and data, runs every tool step in one JVM, returns (Results, context)."""
    libs = kafka_tools.libs()  # skips without the jars or java
    launcher = _tool_batch_dir(libs)
    bs = broker.bootstrap_servers
    work = tmp_path_factory.mktemp("java-tools")
    outdir = work / "out"
    outdir.mkdir()
    ctx = {"bs": bs, "codec_topics": {c: unique(f"java-{c}") for c in CODECS},
           "lat": unique("java-lat"), "multi": unique("java-multi"),
           "doomed": unique("java-doomed"),
           "acks": {a: unique(f"java-acks{a}") for a in ("0", "1", "-1")},
           "from_confluent": unique("java-from-confluent"), "expected": {}}

    # confluent-kafka writes a topic the Java console consumer reads (cross-client)
    ck = pytest.importorskip("test_clients_confluent")
    base = now_ms() - 120_000
    cmsgs = [Msg(f"ck-{i}".encode(), f"from confluent {i}".encode(),
                 (("from", b"confluent"),) if i % 2 else (), base + 1000 * i) for i in range(N)]
    ck.produce(bs, ctx["from_confluent"], cmsgs, **{"compression.type": "zstd"})
    ctx["confluent_msgs"], ctx["base_ts"] = cmsgs, base

    s = Steps(work)
    topics = ["kafka-topics", "--bootstrap-server", bs]
    for codec, t in ctx["codec_topics"].items():
        s.step(f"create-{codec}", *topics, "--create", "--topic", t, "--partitions", 1)
    s.step("create-lat", *topics, "--create", "--topic", ctx["lat"], "--partitions", 1,
           "--config", "message.timestamp.type=LogAppendTime", "--config", "retention.ms=3600000")
    s.step("create-multi", *topics, "--create", "--topic", ctx["multi"], "--partitions", 3)
    s.step("create-doomed", *topics, "--create", "--topic", ctx["doomed"], "--partitions", 2)
    s.step("create-again", *topics, "--create", "--topic", ctx["doomed"], "--partitions", 2)
    s.step("list", *topics, "--list")
    s.step("alter", *topics, "--alter", "--topic", ctx["doomed"], "--partitions", 4)
    s.step("describe", *topics, "--describe", "--topic", ctx["doomed"])
    s.step("delete", *topics, "--delete", "--topic", ctx["doomed"])
    s.step("list-after-delete", *topics, "--list")

    prod = ["kafka-console-producer", "--bootstrap-server", bs]
    for codec, t in ctx["codec_topics"].items():
        lines, msgs = producer_lines(codec)
        ctx["expected"][t] = msgs
        s.step(f"produce-{codec}", *prod, "--topic", t, "--compression-codec", codec,
               *PRODUCER_PROPS, stdin=lines)
    lines, msgs = producer_lines("lat")
    ctx["expected"][ctx["lat"]] = msgs
    ctx["lat_window"] = [now_ms()]
    s.step("produce-lat", *prod, "--topic", ctx["lat"], *PRODUCER_PROPS, stdin=lines)
    lines, msgs = producer_lines("multi")
    ctx["expected"][ctx["multi"]] = msgs
    s.step("produce-multi", *prod, "--topic", ctx["multi"], "--compression-codec", "lz4",
           *PRODUCER_PROPS, stdin=lines)
    for acks, t in ctx["acks"].items():
        lines, msgs = producer_lines(f"acks{acks}")
        ctx["expected"][t] = msgs
        idem = "true" if acks == "-1" else "false"
        s.step(f"produce-acks{acks}", *prod, "--topic", t, "--request-required-acks", acks,
               "--producer-property", f"enable.idempotence={idem}", *PRODUCER_PROPS, stdin=lines)

    for codec, t in ctx["codec_topics"].items():
        consume_step(s, f"consume-{codec}", bs, t, 0, N)
    consume_step(s, "consume-lat", bs, ctx["lat"], 0, N)
    for p in range(3):
        consume_step(s, f"consume-multi-{p}", bs, ctx["multi"], p, 1, offset="earliest")
    consume_step(s, "consume-confluent", bs, ctx["from_confluent"], 0, N)
    consume_step(s, "consume-seek", bs, ctx["from_confluent"], 0, 3, offset=N - 3)

    offs = ["kafka-get-offsets", "--bootstrap-server", bs, "--topic"]
    s.step("offsets-latest", *offs, ctx["from_confluent"], "--time", "-1")
    s.step("offsets-earliest", *offs, ctx["from_confluent"], "--time", "earliest")
    s.step("offsets-ts", *offs, ctx["from_confluent"], "--time", base + 4500)
    s.step("offsets-max-ts", *offs, ctx["from_confluent"], "--time", "max-timestamp")
    s.step("offsets-multi", *offs, ctx["multi"], "--time", "-1")

    cfg = ["kafka-configs", "--bootstrap-server", bs, "--describe"]
    s.step("configs-topic", *cfg, "--entity-type", "topics", "--entity-name", ctx["lat"])
    s.step("configs-topic-all", *cfg, "--entity-type", "topics", "--entity-name", ctx["lat"],
           "--all")
    s.step("configs-broker", *cfg, "--entity-type", "brokers", "--entity-name", "1", "--all")

    spec = work / "steps.txt"
    spec.write_text("\n".join(s.lines) + "\n")
    cmd = kafka_ref_command(libs, launcher, spec, outdir)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=150)
        log = proc.stderr
    except subprocess.TimeoutExpired as exc:
        log = f"launcher timed out after 150 s\n{exc.stderr or ''}"
    ctx["lat_window"].append(now_ms())
    ctx["jvm_seconds"] = time.monotonic() - t0
    return Results(outdir, log), ctx


def kafka_ref_command(libs, launcher, spec, outdir):
    cmd = kafka_tools.tool_command("ToolBatch", str(spec), str(outdir))
    # add the launcher's directory to the classpath after the jars
    i = cmd.index("-cp")
    cmd[i + 1] = f"{cmd[i + 1]}:{launcher}"
    return cmd


# -- topics ---------------------------------------------------------------------------------------

def test_kafka_topics_create_list_alter_describe_delete(java):
    res, ctx = java
    for codec in CODECS:
        assert f"Created topic {ctx['codec_topics'][codec]}." in res.ok(f"create-{codec}")
    res.ok("create-lat")
    rc, out, err = res("create-again")
    assert rc != 0 and "already exists" in (out + err)
    listed = res.ok("list").split()
    assert ctx["doomed"] in listed and ctx["lat"] in listed
    res.ok("alter")
    desc = res.ok("describe")
    assert f"Topic: {ctx['doomed']}" in desc and "PartitionCount: 4" in desc
    assert len(re.findall(r"Partition: \d+\s+Leader: 1\s+Replicas: 1\s+Isr: 1", desc)) == 4
    res.ok("delete")
    assert ctx["doomed"] not in res.ok("list-after-delete").split()


# -- produce with Java, check with our codec and with confluent-kafka ------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_console_producer_codecs_keys_headers_nulls(java, codec):
    res, ctx = java
    res.ok(f"produce-{codec}")
    t = ctx["codec_topics"][codec]
    wait_until(lambda: log_end_offset(ctx["bs"], t) == N, timeout=5)
    stored = assert_stored(ctx["bs"], t, 0, ctx["expected"][t], codec=codec)
    # the Java producer is idempotent by default: InitProducerId, sequences from 0
    batches = [b for b, _ in fetch_batches(ctx["bs"], t, 0)]
    assert batches[0].producer_id >= 0 and batches[0].base_sequence == 0
    assert all(abs(g.timestamp - now_ms()) < 600_000 and g.timestamp_type == 0 for g in stored)
    # confluent-kafka reads what Java wrote
    ck = pytest.importorskip("test_clients_confluent")
    assert_partition_matches(ck.consume(ctx["bs"], t, N), ctx["expected"][t],
                             check_timestamps=False)


def test_console_producer_acks(java):
    res, ctx = java
    for acks, t in ctx["acks"].items():
        res.ok(f"produce-acks{acks}")
        wait_until(lambda: log_end_offset(ctx["bs"], t) == N, timeout=5, what=f"acks={acks}")
        assert_stored(ctx["bs"], t, 0, ctx["expected"][t])
        pids = {b.producer_id for b, _ in fetch_batches(ctx["bs"], t, 0)}
        assert (min(pids) >= 0) == (acks == "-1"), (acks, pids)


def test_console_producer_multi_partition_keys(java):
    res, ctx = java
    res.ok("produce-multi")
    t = ctx["multi"]
    by_part = {p: fetch_records(ctx["bs"], t, p) for p in range(3)}
    assert sum(len(v) for v in by_part.values()) == N
    keys = {}
    for p, recs in by_part.items():
        assert [g.offset for g in recs] == list(range(len(recs)))
        for g in recs:
            keys.setdefault(g.key, set()).add(p)
    assert all(len(ps) == 1 for ps in keys.values())
    assert len([p for p, recs in by_part.items() if recs]) >= 2  # keys spread over partitions
    # each partition keeps the producer's order
    order = [msg.key for msg in ctx["expected"][t]]
    for recs in by_part.values():
        ks = [g.key for g in recs]
        assert ks == sorted(ks, key=order.index)


# -- consume with Java -----------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_console_consumer_reads_every_codec(java, codec):
    res, ctx = java
    t = ctx["codec_topics"][codec]
    rows = parse_consumed(res.ok(f"consume-{codec}"))
    expected = ctx["expected"][t]
    assert [r["offset"] for r in rows] == list(range(N))
    assert [(r["key"], r["value"], r["headers"]) for r in rows] == \
        [(msg.key, msg.value, msg.headers) for msg in expected]
    assert {r["ts_type"] for r in rows} == {"CreateTime"}


def test_console_consumer_log_append_time(java):
    res, ctx = java
    rows = parse_consumed(res.ok("consume-lat"))
    lo, hi = ctx["lat_window"]
    assert len(rows) == N and {r["ts_type"] for r in rows} == {"LogAppendTime"}
    assert all(lo - 5 <= r["ts"] <= hi + 5 for r in rows)


def test_console_consumer_reads_confluent_and_seeks(java):
    res, ctx = java
    rows = parse_consumed(res.ok("consume-confluent"))
    cmsgs = ctx["confluent_msgs"]
    assert [(r["offset"], r["key"], r["value"], r["headers"], r["ts"]) for r in rows] == \
        [(i, msg.key, msg.value, msg.headers, msg.timestamp) for i, msg in enumerate(cmsgs)]
    rows = parse_consumed(res.ok("consume-seek"))
    assert [r["offset"] for r in rows] == [N - 3, N - 2, N - 1]
    assert [r["key"] for r in rows] == [msg.key for msg in cmsgs[-3:]]


def test_console_consumer_each_partition(java):
    res, ctx = java
    seen = []
    for p in range(3):
        rc, out, err = res(f"consume-multi-{p}")
        rows = parse_consumed(out)
        if fetch_records(ctx["bs"], ctx["multi"], p):
            assert rc == 0 and [r["offset"] for r in rows] == [0] and rows[0]["partition"] == p, err
            seen.append(rows[0]["key"])
    assert len(seen) >= 2


# -- offsets and configs ---------------------------------------------------------------------------

def _offsets(out):
    return {int(p): int(o) for p, o in re.findall(r"^[^\s:]+:(\d+):(-?\d+)$", out, re.M)}


def test_get_offsets(java):
    res, ctx = java
    assert _offsets(res.ok("offsets-latest")) == {0: N}
    assert _offsets(res.ok("offsets-earliest")) == {0: 0}
    assert _offsets(res.ok("offsets-ts")) == {0: 5}  # first timestamp >= base + 4500
    assert _offsets(res.ok("offsets-max-ts")) == {0: N - 1}
    multi = _offsets(res.ok("offsets-multi"))
    assert sorted(multi) == [0, 1, 2] and sum(multi.values()) == N


def test_kafka_configs_describe(java):
    res, ctx = java
    out = res.ok("configs-topic")
    assert f"Dynamic configs for topic {ctx['lat']} are:" in out
    assert re.search(r"message\.timestamp\.type=LogAppendTime .*DYNAMIC_TOPIC_CONFIG", out)
    assert re.search(r"retention\.ms=3600000 ", out)
    full = res.ok("configs-topic-all")
    assert re.search(r"cleanup\.policy=delete .*DEFAULT_CONFIG", full)
    assert re.search(r"max\.message\.bytes=1048588 ", full)
    broker = res.ok("configs-broker")
    assert "All configs for broker 1 are:" in broker
    assert re.search(r"num\.partitions=1 ", broker)
    assert re.search(r"log\.segment\.bytes=1073741824 ", broker)


def test_one_jvm_for_all_tools(java):
    """Budget guard: every tool ran in the one JVM, in bounded time."""
    res, ctx = java
    assert ctx["jvm_seconds"] < 120, ctx["jvm_seconds"]
