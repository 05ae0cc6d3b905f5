"""A real Apache Kafka (KRaft, single node: broker + controller) to compare pybroker against.

The jars come from Maven Central via ``ci/fetch_kafka`` (cached under
``~/.cache/pybroker/kafka-<version>/libs``, or ``$PYBROKER_KAFKA_HOME/libs``). Nothing here
downloads anything; the CLI runs ``ci/fetch_kafka`` when the jars are missing.

Library use::

    from kafka_ref import KafkaReference
    with KafkaReference(port=19092) as k:
        k.bootstrap_servers        # "127.0.0.1:19092"

CLI::

    python bench/kafka_ref.py run   [--port P]   # foreground until Ctrl-C
    python bench/kafka_ref.py start [--port P]   # background; state in <tmp>/pybroker-kafka-ref-P
    python bench/kafka_ref.py stop  [--port P]

The configuration is the one Kafka 4.x ships in ``config/server.properties`` for a combined node
(replication factors 1, ``group.initial.rebalance.delay.ms=0``), bound to 127.0.0.1, with the JVM
options of ``kafka-server-start.sh`` (``-Xmx1G -Xms1G`` unless ``KAFKA_HEAP_OPTS`` says otherwise).
``advertised_port`` lets a recording proxy sit in front of the broker (tests/golden/capture.py).
"""
from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
FETCH_SCRIPT = REPO / "ci" / "fetch_kafka"
CACHE_ROOT = pathlib.Path.home() / ".cache" / "pybroker"

# kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS and kafka-server-start.sh's KAFKA_HEAP_OPTS.
JVM_PERFORMANCE_OPTS = [
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
]
DEFAULT_HEAP_OPTS = "-Xmx1G -Xms1G"

SERVER_MAIN = "kafka.Kafka"
STORAGE_MAIN = "kafka.tools.StorageTool"

# log4j2: everything INFO+ to <dir>/server.log, nothing on the console.
LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


class KafkaNotAvailable(RuntimeError):
    """The Kafka jars (or java) are not installed; run ci/fetch_kafka."""


class KafkaStartError(RuntimeError):
    """The reference broker did not come up; the message carries the tail of its log."""


# --- locating the jars -------------------------------------------------------------------------

def _version_key(text: str):
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.-]", text))


def find_libs() -> pathlib.Path | None:
    """The directory holding a complete ci/fetch_kafka copy of the Kafka jars, or None.

    ``PYBROKER_KAFKA_HOME`` names one copy; otherwise ``PYBROKER_KAFKA_VERSION`` picks among the
    cached ones, else the newest cached version wins.
    """
    home = os.environ.get("PYBROKER_KAFKA_HOME")
    if home:
        libs = pathlib.Path(home) / "libs"
        return libs if (libs / ".complete").is_file() else None
    version = os.environ.get("PYBROKER_KAFKA_VERSION")
    pattern = f"kafka-{version}" if version else "kafka-*"
    found = [pathlib.Path(p).parent for p in glob.glob(str(CACHE_ROOT / pattern / "libs" / ".complete"))]
    if not found:
        return None
    return max(found, key=lambda libs: _version_key(libs.parent.name[len("kafka-"):]))


def kafka_version(libs: pathlib.Path) -> str:
    """The version written by ci/fetch_kafka into libs/.complete."""
    return (libs / ".complete").read_text().strip()


def fetch_libs() -> pathlib.Path:
    """Runs ci/fetch_kafka (fast when already cached) and returns the libs directory."""
    out = subprocess.run([str(FETCH_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return pathlib.Path(out.stdout.strip().splitlines()[-1])


def require_libs() -> pathlib.Path:
    libs = find_libs()
    if libs is None:
        raise KafkaNotAvailable("Kafka jars not found: run ci/fetch_kafka")
    if shutil.which("java") is None:
        raise KafkaNotAvailable("java is not on PATH (Kafka 4.x needs Java 17+)")
    return libs


def java_command(libs: pathlib.Path, main_class: str, args, *, jvm_opts=(), log4j_config=None):
    """argv for ``java -cp libs/* <main_class> args`` (the classpath wildcard is Java's own)."""
    cmd = ["java", *jvm_opts]
    if log4j_config is not None:
        cmd.append(f"-Dlog4j2.configurationFile={log4j_config}")
    cmd += ["-cp", str(libs / "*"), main_class, *args]
    return cmd


# --- small helpers -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_cluster_id() -> str:
    """A Kafka Uuid as its tools print it: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's Uuid.randomUuid(), never one that starts with "-": the tools' argument parser
    would read it as an option (1 run in 64 failed to format before this)."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def api_versions_probe(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when host:port answers an ApiVersions v0 request with its correlation id.

    # request:  i32 size | i16 api_key=18 | i16 api_version=0 | i32 correlation_id |
    #           i16 client_id length | client_id          (header v1, empty body)
    # response: i32 size | i32 correlation_id | body       (header v0)
    """
    client_id = b"kafka-ref-probe"
    payload = struct.pack(">hhih", 18, 0, 0x7EF, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(payload)) + payload)
            head = _recv_exact(s, 8)
    except OSError:
        return False
    return head is not None and struct.unpack(">ii", head)[1] == 0x7EF


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# --- the reference broker ------------------------------------------------------------------------

class KafkaReference:
    """One KRaft node (process.roles=broker,controller) in a temporary directory.

    port: the PLAINTEXT listener on 127.0.0.1 (0 = pick a free one).
    advertised_port: what the broker tells clients in Metadata/FindCoordinator (default: port).
    overrides: extra server.properties entries (strings), applied last.
    """

    def __init__(self, port: int = 0, *, advertised_port: int | None = None, controller_port: int = 0,
                 overrides: dict | None = None, workdir: str | os.PathLike | None = None,
                 libs: pathlib.Path | None = None, start_timeout: float = 90.0, log_level: str = "INFO"):
        self.libs = libs or require_libs()
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.controller_port = controller_port or free_port()
        self.overrides = dict(overrides or {})
        self.start_timeout = start_timeout
        self.log_level = log_level
        self._own_workdir = workdir is None
        self.workdir = pathlib.Path(workdir) if workdir else None
        self.process: subprocess.Popen | None = None
        self.cluster_id = random_cluster_id()

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def version(self) -> str:
        return kafka_version(self.libs)

    @property
    def log_file(self) -> pathlib.Path:
        return self.workdir / "server.log"

    def server_properties(self) -> dict:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "advertised.listeners": (f"PLAINTEXT://127.0.0.1:{self.advertised_port},"
                                     f"CONTROLLER://127.0.0.1:{self.controller_port}"),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update({k: str(v) for k, v in self.overrides.items()})
        return props

    # lifecycle

    def start(self) -> "KafkaReference":
        if self.workdir is None:
            self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="pybroker-kafka-ref-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log4j = self._write_log4j()
        self._format(config, log4j)
        self._launch(config, log4j)
        self._wait_ready()
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (Kafka's controlled shutdown), SIGKILL after timeout; removes a temp workdir."""
        code = None
        if self.process is not None:
            code = _terminate(self.process, timeout)
            self.process = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        return code

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def _write_config(self) -> pathlib.Path:
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        return path

    def _write_log4j(self) -> pathlib.Path:
        path = self.workdir / "log4j2.properties"
        path.write_text(LOG4J2_PROPERTIES.format(log_file=self.log_file, level=self.log_level))
        return path

    def _format(self, config: pathlib.Path, log4j: pathlib.Path) -> None:
        args = ["format", "--config", str(config), "--cluster-id", self.cluster_id, "--standalone"]
        cmd = java_command(self.libs, STORAGE_MAIN, args, log4j_config=log4j)
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if out.returncode != 0:
            raise KafkaStartError(f"kafka-storage format failed ({out.returncode}):\n{out.stdout}")

    def _launch(self, config: pathlib.Path, log4j: pathlib.Path) -> None:
        heap = os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP_OPTS).split()
        cmd = java_command(self.libs, SERVER_MAIN, [str(config)],
                           jvm_opts=[*heap, *JVM_PERFORMANCE_OPTS], log4j_config=log4j)
        console = open(self.workdir / "console.out", "wb")
        with console:
            self.process = subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KafkaStartError(f"Kafka exited with {self.process.returncode}\n{self.log_tail()}")
            if api_versions_probe("127.0.0.1", self.port, timeout=1.0):
                return
            time.sleep(0.25)
        raise KafkaStartError(f"Kafka did not answer on port {self.port} within "
                              f"{self.start_timeout:.0f}s\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("console.out", "server.log"):
            path = self.workdir / name if self.workdir else None
            if path is not None and path.is_file():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)


def _terminate(process: subprocess.Popen, timeout: float) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


# --- CLI -----------------------------------------------------------------------------------------

def _state_dir(port: int) -> pathlib.Path:
    return pathlib.Path(tempfile.gettempdir()) / f"pybroker-kafka-ref-{port}"


def _libs_for_cli() -> pathlib.Path:
    return find_libs() or fetch_libs()


def cmd_run(args) -> int:
    with KafkaReference(port=args.port, libs=_libs_for_cli()) as k:
        print(f"Kafka {k.version} listening on {k.bootstrap_servers} (dir {k.workdir}); Ctrl-C stops it",
              flush=True)
        try:
            k.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


def cmd_start(args) -> int:
    state = _state_dir(args.port)
    if (state / "state.json").is_file():
        print(f"already started (state in {state}); stop it first", file=sys.stderr)
        return 1
    k = KafkaReference(port=args.port, workdir=state, libs=_libs_for_cli())
    try:
        k.start()
    except BaseException:
        k.stop()
        shutil.rmtree(state, ignore_errors=True)
        raise
    (state / "state.json").write_text(json.dumps({"pid": k.process.pid, "port": k.port}))
    print(k.bootstrap_servers)
    return 0


def cmd_stop(args) -> int:
    state = _state_dir(args.port)
    try:
        info = json.loads((state / "state.json").read_text())
    except FileNotFoundError:
        print(f"nothing started on port {args.port}", file=sys.stderr)
        return 1
    _stop_pid(info["pid"])
    shutil.rmtree(state, ignore_errors=True)
    return 0


def _stop_pid(pid: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "run"])
    parser.add_argument("--port", type=int, default=19092, help="PLAINTEXT port on 127.0.0.1")
    args = parser.parse_args(argv)
    return {"start": cmd_start, "stop": cmd_stop, "run": cmd_run}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
