"""Captures golden request/response frames from real Kafka clients talking to real Apache Kafka.

    python tests/golden/capture.py                      # all clients, rewrites tests/golden/frames/
    python tests/golden/capture.py --clients java       # only some (others' frames are kept)

How: bench/kafka_ref.py starts a KRaft Kafka whose advertised listener is the port of a recording
TCP proxy (``RecordingProxy``, asyncio, loopback only), so every connection a client opens, the
bootstrap one and those to the "broker" it learns from Metadata, goes through the proxy. The proxy
splits both directions into frames and records each one with its connection. Each client runs
its scenario (tests/golden/clients/*.py, tests/golden/java/GoldenClient.java) in a subprocess,
labelled by the proxy; then a small, representative subset of request/response pairs is written
under frames/<client>/ with an index (frames/index.json). See tests/golden/README.md.

This is capture tooling: it needs Java, the Kafka jars (ci/fetch_kafka) and the client libraries,
and is not run in CI; the captured frames are committed.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import importlib.util
import json
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
FRAMES_DIR = HERE / "frames"
JAVA_DIR = HERE / "java"
CLIENTS_DIR = HERE / "clients"

PAIRS_PER_KIND = 2          # request/response pairs kept per (client, api, version, variant)
# ... more for the handshakes whose first tries are often refused (NOT_COORDINATOR,
# MEMBER_ID_REQUIRED, COORDINATOR_LOAD_IN_PROGRESS): ApiVersions, FindCoordinator, JoinGroup,
# SyncGroup, InitProducerId
PAIRS_PER_API = {18: 4, 10: 4, 11: 4, 14: 3, 22: 4}
LARGEST_FETCHES = 4      # extra Fetch pairs kept: those with the largest responses
PRODUCE, FETCH = 0, 1


# --- the recording proxy -------------------------------------------------------------------------

@dataclasses.dataclass
class Frame:
    """One frame as seen on the wire, without its 4-byte size prefix."""
    label: str              # which client's run opened the connection
    connection: int
    seq: int                # global arrival order
    direction: str          # "request" | "response"
    api_key: int
    api_version: int
    correlation_id: int
    data: bytes


class RecordingProxy:
    """Loopback TCP proxy that forwards bytes unchanged and records every Kafka frame.

    # frame:            i32 size | size bytes
    # request header:   i16 api_key | i16 api_version | i32 correlation_id | ...
    # response header:  i32 correlation_id | ...     (matched to its request per connection)
    """

    def __init__(self, upstream_port: int, listen_port: int = 0):
        self.upstream_port = upstream_port
        self.listen_port = listen_port
        self.label = "unlabelled"
        self.frames: list[Frame] = []
        self._open = 0
        self._connections = 0
        self._seq = 0
        self._server = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self.listen_port

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def open_connections(self) -> int:
        return self._open

    async def _accept(self, client_reader, client_writer):
        self._connections += 1
        self._open += 1
        conn, label, pending = self._connections, self.label, {}
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self._open -= 1
            client_writer.close()
            return
        try:
            await asyncio.gather(
                self._pump(client_reader, up_writer, conn, label, pending, "request"),
                self._pump(up_reader, client_writer, conn, label, pending, "response"))
        finally:
            self._open -= 1
            for w in (client_writer, up_writer):
                w.close()

    async def _pump(self, reader, writer, conn, label, pending, direction):
        try:
            while True:
                size_bytes = await reader.readexactly(4)
                (size,) = struct.unpack(">i", size_bytes)
                data = await reader.readexactly(size)
                self._record(conn, label, pending, direction, data)
                writer.write(size_bytes + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _record(self, conn, label, pending, direction, data):
        if direction == "request":
            api_key, api_version, corr = struct.unpack_from(">hhi", data)
            pending[corr] = (api_key, api_version)
        else:
            (corr,) = struct.unpack_from(">i", data)
            api_key, api_version = pending.pop(corr, (-1, -1))
        self._seq += 1
        self.frames.append(Frame(label, conn, self._seq, direction, api_key, api_version, corr, data))


class ProxyThread:
    """Runs a RecordingProxy on its own event loop in a daemon thread."""

    def __init__(self, upstream_port: int, listen_port: int = 0):
        self.proxy = RecordingProxy(upstream_port, listen_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)

    def wait_idle(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.proxy.open_connections and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# --- clients -------------------------------------------------------------------------------------

def _load_kafka_ref():
    spec = importlib.util.spec_from_file_location("kafka_ref", REPO / "bench" / "kafka_ref.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_client(script: str):
    def command(bootstrap, prefix, libs, build):
        return [sys.executable, str(CLIENTS_DIR / script), bootstrap, prefix]
    return command


def java_client(bootstrap, prefix, libs, build):
    return ["java", "-Xmx256M", f"-Dlog4j2.configurationFile={build / 'log4j2.properties'}",
            "-cp", f"{build}:{libs}/*", "GoldenClient", bootstrap, prefix]


def client_versions(libs: pathlib.Path, kafka_version: str) -> dict:
    import aiokafka
    import confluent_kafka
    import kafka
    return {
        "confluent-kafka": f"confluent-kafka {confluent_kafka.__version__} "
                           f"(librdkafka {confluent_kafka.libversion()[0]})",
        "kafka-python": f"kafka-python {kafka.__version__}",
        "aiokafka": f"aiokafka {aiokafka.__version__}",
        "java": f"kafka-clients {kafka_version}",
    }


CLIENTS = {
    # name: (command builder, topic prefix)
    "confluent-kafka": (python_client("confluent_client.py"), "ck"),
    "kafka-python": (python_client("kafka_python_client.py"), "kp"),
    "aiokafka": (python_client("aiokafka_client.py"), "aio"),
    "java": (java_client, "java"),
}


def build_java(libs: pathlib.Path, build: pathlib.Path) -> None:
    sources = sorted(str(p) for p in JAVA_DIR.glob("*.java"))
    subprocess.run(["javac", "-proc:none", "-d", str(build), "-cp", f"{libs}/*", *sources], check=True)
    (build / "log4j2.properties").write_text(
        "status = warn\nappender.err.type = Console\nappender.err.name = err\n"
        "appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n"
        "appender.err.layout.pattern = %p %m (%c)%n\nrootLogger.level = WARN\n"
        "rootLogger.appenderRef.err.ref = err\n")


def run_client(name: str, proxy: ProxyThread, bootstrap: str, libs, build) -> None:
    command_for, prefix = CLIENTS[name]
    proxy.proxy.label = name
    started = time.monotonic()
    subprocess.run(command_for(bootstrap, prefix, libs, build), check=True, timeout=300)
    proxy.wait_idle()
    proxy.proxy.label = "unlabelled"
    count = sum(1 for f in proxy.proxy.frames if f.label == name)
    print(f"{name}: {count} frames in {time.monotonic() - started:.1f}s", flush=True)


# --- selecting and writing frames ----------------------------------------------------------------

def _pairs(frames):
    """(request, response-or-None) per request, in arrival order."""
    responses = {(f.connection, f.correlation_id): f for f in frames if f.direction == "response"}
    for f in frames:
        if f.direction == "request":
            yield f, responses.get((f.connection, f.correlation_id))


def _variant(request: Frame) -> str:
    """What distinguishes pairs of one API version worth keeping separately. The scenarios use
    one producer per compression codec, so a Produce's connection stands for its codec (Produce
    v13+ names topics by id, so the topic name cannot tell)."""
    if request.api_key == PRODUCE:
        return f"connection {request.connection}"
    return ""


def select(frames):
    """A few pairs per (api, version, variant): the first ones, so handshakes stay in; for Fetch
    also the largest responses, which are the ones carrying record batches."""
    kept, counts, fetches = [], collections.Counter(), collections.defaultdict(list)
    for request, response in _pairs(frames):
        kind = (request.api_key, request.api_version, _variant(request))
        if counts[kind] < PAIRS_PER_API.get(request.api_key, PAIRS_PER_KIND):
            counts[kind] += 1
            kept.append((request, response))
        elif request.api_key == FETCH and response is not None:
            fetches[request.api_version].append((request, response))
    for pairs in fetches.values():
        kept += sorted(pairs, key=lambda p: len(p[1].data), reverse=True)[:LARGEST_FETCHES]
    kept.sort(key=lambda p: p[0].seq)
    return kept


# APIs a client may use that pybroker's table (pybroker/protocol/defs) may not have (yet).
EXTRA_API_NAMES = {68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe"}


def api_name(api_key: int) -> str:
    try:
        from pybroker.protocol.apis import API_BY_KEY
        return API_BY_KEY[api_key].name
    except (ImportError, KeyError):
        return EXTRA_API_NAMES.get(api_key, f"Api{api_key}")


def request_client_id(data: bytes):
    """ClientId of a request frame (header v1/v2: i16 length + bytes right after CorrelationId)."""
    (length,) = struct.unpack_from(">h", data, 8)
    return None if length < 0 else data[10:10 + length].decode("utf-8", "replace")


def write_client(name: str, version: str, pairs, out_dir: pathlib.Path) -> list:
    client_dir = out_dir / name
    shutil.rmtree(client_dir, ignore_errors=True)
    client_dir.mkdir(parents=True)
    entries = []
    for n, (request, response) in enumerate(pairs):
        for frame in (request, response):
            if frame is None:
                continue   # Produce with acks=0 has no response
            tag = "req" if frame.direction == "request" else "resp"
            fname = f"{n:03d}-{api_name(frame.api_key)}-v{frame.api_version}-{tag}.bin"
            (client_dir / fname).write_bytes(frame.data)
            entries.append({
                "client": name, "client_version": version, "direction": frame.direction,
                "api_key": frame.api_key, "api_name": api_name(frame.api_key),
                "api_version": frame.api_version, "correlation_id": frame.correlation_id,
                "connection": frame.connection, "file": f"{name}/{fname}", "size": len(frame.data),
            })
            if frame.direction == "request":
                entries[-1]["client_id"] = request_client_id(frame.data)
    return entries


def write_index(out_dir: pathlib.Path, new_entries: dict, kafka_version: str) -> None:
    index_path = out_dir / "index.json"
    old = json.loads(index_path.read_text())["frames"] if index_path.is_file() else []
    kept = [e for e in old if e["client"] not in new_entries]
    frames = kept + [e for entries in new_entries.values() for e in entries]
    frames.sort(key=lambda e: (e["client"], e["file"]))
    index = {
        "about": "Frames captured by tests/golden/capture.py; each file is one frame WITHOUT its "
                 "4-byte size prefix (request: header + body; response: header + body).",
        "broker": f"Apache Kafka {kafka_version} (KRaft, single node)",
        "frames": frames,
    }
    index_path.write_text(json.dumps(index, indent=1) + "\n")


# --- main ----------------------------------------------------------------------------------------

def capture(clients, out_dir: pathlib.Path) -> None:
    kafka_ref = _load_kafka_ref()
    libs = kafka_ref.find_libs() or kafka_ref.fetch_libs()
    kafka_version = kafka_ref.kafka_version(libs)
    versions = client_versions(libs, kafka_version)
    with tempfile.TemporaryDirectory(prefix="golden-build-") as build_dir:
        build = pathlib.Path(build_dir)
        if "java" in clients:
            build_java(libs, build)
        kafka_port = kafka_ref.free_port()
        proxy = ProxyThread(kafka_port)
        proxy_port = proxy.start()
        try:
            with kafka_ref.KafkaReference(port=kafka_port, advertised_port=proxy_port, libs=libs) as k:
                for name in clients:
                    run_client(name, proxy, k.bootstrap_servers, libs, build)
        finally:
            proxy.stop()
    entries = {}
    for name in clients:
        frames = [f for f in proxy.proxy.frames if f.label == name]
        entries[name] = write_client(name, versions[name], select(frames), out_dir)
    write_index(out_dir, entries, kafka_version)
    total = sum(p.stat().st_size for p in out_dir.rglob("*.bin"))
    print(f"wrote {sum(map(len, entries.values()))} frames; {total} bytes of frames under {out_dir}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Capture golden Kafka frames from real clients.")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help=f"comma-separated subset of {', '.join(CLIENTS)}")
    parser.add_argument("--out", type=pathlib.Path, default=FRAMES_DIR)
    args = parser.parse_args(argv)
    clients = [c for c in args.clients.split(",") if c]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    capture(clients, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
