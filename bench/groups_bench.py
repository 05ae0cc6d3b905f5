"""Consumer-group numbers of issue 4, with real clients (confluent-kafka / librdkafka), against a
``pybroker serve`` subprocess and Apache Kafka (bench/kafka_ref.py) in the same run.

    python bench/groups_bench.py [--brokers pybroker,kafka] [--profiles fast,default]
                                 [--repeat N] [--commit-repeat N] [--seconds S] [--trace]
                                 [--pybroker-tree DIR]

About 4.5 minutes with both brokers and both profiles (Kafka starts twice, ~10 s each);
``--profiles fast`` takes about 2.5. asv twin: benchmarks/bench_groups.py (pybroker only).

Measured, for group.protocol=classic and group.protocol=consumer (KIP-848):
  1. stabilisation of an M-member group (default 10) subscribed to one P-partition topic
     (default 20): the time until every member owns a share, the shares are disjoint, cover all
     P partitions and differ in size by at most one, measured
       cold  from the first subscribe() of M fresh consumers,
       leave from close() of one member until the other M-1 cover everything again,
       join  from subscribe() of one new member until the M members cover everything again.
     Ownership is tracked in the clients' rebalance callbacks (on_assign adds, on_revoke/on_lost
     remove), timestamped when each callback runs; the stable time is the last such change.
     Each member polls in its own thread (poll(0.05)); librdkafka releases the GIL while polling.
     A fresh group (and topic) per run; runs alternate between the brokers.
  2. offset commits per second (OffsetCommit of one partition's offset per call): synchronous
     commits from 1 member and from M members (one thread each, each committing its own
     partitions), and asynchronous commits with at most ASYNC_WINDOW unacknowledged per member
     (rate = acknowledged commits / s). Each cell is measured --commit-repeat times, alternating
     between the brokers so that both see the same background load; the median is shown, with the
     broker's and this client process's CPU time per commit (/proc). After each sync run every
     member reads its partitions' committed offsets back (OffsetFetch) and checks them against the
     last commit acknowledged; a mismatch counts as a failed commit.

Broker profiles (server-side settings; everything else is the broker's default):
  fast     group.initial.rebalance.delay.ms=0, group.consumer.heartbeat.interval.ms=500
           (Kafka also needs group.consumer.min.heartbeat.interval.ms=500 to accept it)
  default  Kafka's defaults: group.initial.rebalance.delay.ms=3000,
           group.consumer.heartbeat.interval.ms=5000
Client settings are librdkafka's defaults (classic: session.timeout.ms=45000,
heartbeat.interval.ms=3000, partition.assignment.strategy=range,roundrobin) except
enable.auto.commit=false. Commits run in the fast profile only (the group settings do not enter
the commit path).

``--pybroker-tree DIR`` runs the broker from another checkout, e.g. a ``git archive HEAD``
export with core/pybroker_core built, when the shared tree holds someone's work in progress.

The client runs in this process, each broker in its own process, all on a shared 2-core machine:
compare columns of one run, not runs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this tree

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import kafka_ref  # noqa: E402
from e2e.procstat import cpu_seconds  # noqa: E402
from e2e.targets import PybrokerTarget  # noqa: E402

PROFILES = {
    "fast": {"group.initial.rebalance.delay.ms": 0, "group.consumer.heartbeat.interval.ms": 500},
    "default": {"group.initial.rebalance.delay.ms": 3000, "group.consumer.heartbeat.interval.ms": 5000},
}
# Kafka refuses a heartbeat interval below group.consumer.min.heartbeat.interval.ms (default 5000).
KAFKA_EXTRA = {"fast": {"group.consumer.min.heartbeat.interval.ms": 500}, "default": {}}
POLL_SECONDS = 0.05
PHASE_TIMEOUT = 60.0
ASYNC_WINDOW = 128
ASYNC_POLL_SECONDS = 0.002
DRAIN_SECONDS = 0.3


# --- brokers -------------------------------------------------------------------------------------

class TreeTarget(PybrokerTarget):
    """PybrokerTarget run from another checkout (``--pybroker-tree``): cwd and PYTHONPATH point at
    it, so a clean export of a commit can be measured while the shared tree has work in progress."""

    def __init__(self, tree: str, **kwargs):
        super().__init__(**kwargs)
        self.tree = os.path.abspath(tree)

    def _spawn(self) -> None:
        cmd = [self.python, "-m", "pybroker", "serve"]
        for key, value in self.server_overrides().items():
            cmd += ["--override", f"{key}={value}"]
        self.command = cmd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(self.tree, "core"), self.tree]))
        with open(self.workdir / "console.out", "wb") as console:
            self.process = subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, cwd=self.tree, start_new_session=True)

    def version(self) -> str:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(self.tree, "core"), self.tree]))
        out = subprocess.run([self.python, "-c", "import pybroker; print(pybroker.__version__)"], env=env,
                             cwd=self.tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return f"{out.stdout.strip() or '?'} from {self.tree}"


class PybrokerProcess:
    """``python -m pybroker serve`` on a free port, on-disk log in a temporary directory."""
    name = "pybroker"

    def __init__(self, overrides: dict, tree: str | None = None):
        overrides = {k: str(v) for k, v in overrides.items()}
        self.target = TreeTarget(tree, overrides=overrides) if tree else PybrokerTarget(overrides=overrides)

    def __enter__(self):
        self.target.start()
        self.pid = self.target.pid
        self.bootstrap = self.target.bootstrap
        self.version = self.target.version()
        return self

    def __exit__(self, *exc):
        self.target.stop()


class KafkaProcess:
    """Apache Kafka, one KRaft node, via bench/kafka_ref.py."""
    name = "kafka"

    def __init__(self, overrides: dict):
        self.ref = kafka_ref.KafkaReference(overrides=overrides)

    def __enter__(self):
        self.ref.__enter__()
        self.pid = self.ref.process.pid
        self.bootstrap = self.ref.bootstrap_servers
        self.version = self.ref.version
        return self

    def __exit__(self, *exc):
        self.ref.__exit__(*exc)


def broker_for(name: str, profile: str, tree: str | None = None):
    overrides = dict(PROFILES[profile])
    if name == "kafka":
        overrides.update(KAFKA_EXTRA[profile])
        return KafkaProcess(overrides)
    return PybrokerProcess(overrides, tree)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)
    futures[topic].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not visible with {partitions} partitions")


# --- group members ---------------------------------------------------------------------------------

class GroupView:
    """Who owns what, from the members' rebalance callbacks, and when it last changed."""

    def __init__(self, partitions: int):
        self.all = frozenset(range(partitions))
        self.lock = threading.Lock()
        self.owned: dict[int, set] = {}
        self.last_change = time.monotonic()
        self.errors: list[str] = []
        self.events: list[tuple] = []         # (time, member, "+"/"-", partitions) for --trace

    def join(self, key: int) -> None:
        with self.lock:
            self.owned[key] = set()
            self.last_change = time.monotonic()

    def drop(self, key: int) -> None:
        with self.lock:
            self.owned.pop(key, None)
            self.last_change = time.monotonic()

    def change(self, key: int, added=(), removed=(), sign="+") -> None:
        with self.lock:
            share = self.owned.get(key)
            if share is None:                 # a leaving member's own revoke
                return
            share.difference_update(removed)
            share.update(added)
            self.last_change = time.monotonic()
            self.events.append((self.last_change, key, sign, sorted(added or removed)))

    def stable_since(self, members: int):
        """The time of the last change when `members` members own balanced, disjoint shares that
        cover every partition; None otherwise."""
        with self.lock:
            shares = list(self.owned.values())
            if len(shares) != members:
                return None
            sizes = [len(s) for s in shares]
            if min(sizes) == 0 or max(sizes) - min(sizes) > 1 or sum(sizes) != len(self.all):
                return None
            if frozenset().union(*shares) != self.all:
                return None
            return self.last_change


class Member:
    """One confluent-kafka consumer in its own thread: polls, or runs a commit loop when asked."""

    def __init__(self, key: int, bootstrap: str, group: str, protocol: str, view: GroupView,
                 topic: str, **extra):
        self.key, self.view, self.topic = key, view, topic
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol,
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest", "on_commit": self._on_commit}
        conf.update(extra)
        self.consumer = Consumer(conf)
        self.acked = 0
        self.commit_errors = 0
        self.task = self._poll
        self.stop_event = threading.Event()
        self.closed_at = None
        self.thread = threading.Thread(target=self._run, name=f"member-{key}", daemon=True)

    # rebalance callbacks (run inside poll on this member's thread)
    def _on_assign(self, consumer, partitions):
        self.view.change(self.key, added={p.partition for p in partitions})

    def _on_revoke(self, consumer, partitions):
        self.view.change(self.key, removed={p.partition for p in partitions}, sign="-")

    def _on_commit(self, err, partitions):
        if err is not None or any(p.error is not None for p in partitions or ()):
            self.commit_errors += 1
        else:
            self.acked += 1

    def start(self) -> None:
        self.view.join(self.key)
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.task()
        self.closed_at = time.monotonic()
        self.consumer.close()

    def _poll(self) -> None:
        msg = self.consumer.poll(POLL_SECONDS)
        if msg is not None and msg.error() is not None and not msg.error().retriable():
            self.view.errors.append(f"member {self.key}: {msg.error()}")

    def owned(self) -> list[int]:
        with self.view.lock:
            return sorted(self.view.owned.get(self.key, ()))

    def leave(self) -> float:
        """Stops the thread, which closes the consumer (LeaveGroup); returns the time close began."""
        self.view.drop(self.key)
        self.stop_event.set()
        self.thread.join(60)
        return self.closed_at

    def close_quietly(self) -> None:
        if self.thread.is_alive():
            self.leave()


TRACE = False


def wait_stable(view: GroupView, members: int, since: float, timeout: float = PHASE_TIMEOUT):
    """Seconds from `since` to the moment the group settled with `members` members, or None."""
    try:
        return _wait_stable(view, members, since, timeout)
    finally:
        if TRACE:
            print_trace(view, since)


def print_trace(view: GroupView, since: float) -> None:
    with view.lock:
        events = [e for e in view.events if e[0] >= since]
    print(f"#     trace ({len(events)} callbacks):", " ".join(
        f"{t - since:.2f}:m{k}{sign}{len(parts)}" for t, k, sign, parts in events), flush=True)


def _wait_stable(view, members, since, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at = view.stable_since(members)
        if at is not None:
            return max(at - since, 0.0)
        time.sleep(0.005)
    return None


# --- 1. stabilisation ------------------------------------------------------------------------------

class GroupRun:
    """A fresh group on its own topic; members come and go through add/remove."""

    def __init__(self, bootstrap: str, protocol: str, name: str, partitions: int):
        self.bootstrap, self.protocol, self.partitions = bootstrap, protocol, partitions
        self.topic = self.group = name
        self.view = GroupView(partitions)
        self.members: list[Member] = []
        self.next_key = 0
        create_topic(bootstrap, self.topic, partitions)

    def new_member(self) -> Member:
        m = Member(self.next_key, self.bootstrap, self.group, self.protocol, self.view, self.topic)
        self.next_key += 1
        self.members.append(m)
        return m

    def cold_start(self, count: int):
        created = [self.new_member() for _ in range(count)]
        t0 = time.monotonic()
        for m in created:
            m.start()
        return wait_stable(self.view, len(self.members), t0)

    def leave_one(self):
        m = self.members.pop(0)              # the oldest member leaves
        t0 = m.leave()
        return wait_stable(self.view, len(self.members), t0)

    def join_one(self):
        m = self.new_member()
        t0 = time.monotonic()
        m.start()
        return wait_stable(self.view, len(self.members), t0)

    def close(self) -> None:
        for m in self.members:
            m.stop_event.set()
        for m in self.members:
            m.thread.join(60)
        self.members = []


def stabilisation_run(bootstrap: str, protocol: str, name: str, args, result: dict) -> None:
    """One fresh group: cold start of M members, one leaves, one joins; appends the seconds of
    each phase to result[phase] (None when it did not settle within PHASE_TIMEOUT)."""
    run = GroupRun(bootstrap, protocol, name, args.partitions)
    try:
        for phase, step in (("cold", lambda: run.cold_start(args.members)),
                            ("leave", run.leave_one), ("join", run.join_one)):
            result[phase].append(step())
            if result[phase][-1] is None:
                shares = [sorted(s) for s in run.view.owned.values()]
                result["errors"].append(f"{phase} timed out after {PHASE_TIMEOUT:.0f} s; shares {shares}")
                break
    finally:
        run.close()
        result["errors"] += run.view.errors[:5]


# --- 2. commits --------------------------------------------------------------------------------------

def sync_commit_task(member: Member, partitions: list[int], counter: list):
    """One synchronous commit per call; task.last maps partition -> last offset acknowledged."""
    state = {"i": 0}

    def task():
        i = state["i"]
        state["i"] = i + 1
        tp = TopicPartition(member.topic, partitions[i % len(partitions)], i + 1)
        try:
            member.consumer.commit(offsets=[tp], asynchronous=False)
            counter[0] += 1
            task.last[tp.partition] = tp.offset
        except confluent_kafka.KafkaException as exc:
            member.commit_errors += 1
            member.view.errors.append(f"member {member.key}: {exc}")
            time.sleep(0.01)
    task.last = {}
    return task


def verify_committed(run: GroupRun, tasks: dict) -> int:
    """Partitions whose committed offset (OffsetFetch) is not the last one a sync commit had
    acknowledged: the commits counted must have been stored. Each member checks its own, on its
    own thread (a consumer is not called from two threads at once)."""
    checks = {}
    for m in run.members:
        checks[m.key] = check = {"done": threading.Event(), "wrong": []}
        m.task = _verify_task(m, tasks[m.key].last, check)
    wrong = 0
    for m in run.members:
        if not checks[m.key]["done"].wait(30):
            checks[m.key]["wrong"].append("no OffsetFetch answer within 30 s")
        wrong += len(checks[m.key]["wrong"])
        run.view.errors += [f"member {m.key}: {w}" for w in checks[m.key]["wrong"]]
    return wrong


def _verify_task(member: Member, last: dict, check: dict):
    def task():
        member.task = member._poll
        try:
            tps = [TopicPartition(member.topic, p) for p in sorted(last)]
            for tp in member.consumer.committed(tps, timeout=10):
                if tp.error is not None or tp.offset != last[tp.partition]:
                    check["wrong"].append(f"p{tp.partition} committed {tp.offset}, expected "
                                          f"{last[tp.partition]} ({tp.error})")
        except confluent_kafka.KafkaException as exc:
            check["wrong"].append(f"OffsetFetch failed: {exc}")
        finally:
            check["done"].set()
    return task


def async_commit_task(member: Member, partitions: list[int]):
    """Fills the window of unacknowledged commits, then polls ASYNC_POLL_SECONDS, which serves the
    on_commit callbacks (a blocking poll rather than a spin: the client shares the 2 cores)."""
    state = {"i": 0}
    done_before = member.acked + member.commit_errors

    def task():
        while state["i"] - (member.acked + member.commit_errors - done_before) < ASYNC_WINDOW:
            i = state["i"]
            state["i"] = i + 1
            tp = TopicPartition(member.topic, partitions[i % len(partitions)], i + 1)
            member.consumer.commit(offsets=[tp], asynchronous=True)
        member.consumer.poll(ASYNC_POLL_SECONDS)
    return task


def commit_rate(run: GroupRun, mode: str, seconds: float, warmup: float, broker_pid: int | None = None) -> dict:
    """Commits completed per second by all members of a stable group over `seconds`, after
    `warmup` seconds of the same load (not counted), with the CPU time the broker process and this
    (client) process spent per commit in that window."""
    time.sleep(DRAIN_SECONDS)                # callbacks of earlier commits are served first
    counters = {m.key: [0] for m in run.members}
    tasks = {}
    for m in run.members:
        parts = m.owned()
        tasks[m.key] = (sync_commit_task(m, parts, counters[m.key]) if mode == "sync"
                        else async_commit_task(m, parts))
        m.task = tasks[m.key]
    time.sleep(warmup)
    before = _commit_counts(run, counters, mode, broker_pid)
    time.sleep(seconds)
    after = _commit_counts(run, counters, mode, broker_pid)
    for m in run.members:
        m.task = m._poll
    done, failed, broker_cpu, client_cpu = (a - b for a, b in zip(after, before))
    if mode == "sync":
        failed += verify_committed(run, tasks)
    per = (lambda cpu: cpu / done * 1e6 if done else None)
    return {"rate": done / seconds, "errors": failed,
            "broker_us": per(broker_cpu) if broker_pid else None, "client_us": per(client_cpu)}


def _commit_counts(run: GroupRun, counters: dict, mode: str, broker_pid) -> tuple:
    """(commits completed, commits failed, broker CPU s, client CPU s) so far."""
    if mode == "sync":
        done = sum(c[0] for c in counters.values())
    else:
        done = sum(m.acked for m in run.members)
    broker = cpu_seconds(broker_pid) if broker_pid else 0.0
    return done, sum(m.commit_errors for m in run.members), broker, time.process_time()


def commits_interleaved(brokers: list, protocol: str, args, results: dict) -> None:
    """Commit rates for 1 and M members, sync and async: one group per broker, measurements
    alternating between the brokers `args.commit_repeat` times so that they share the machine's
    background load; appends commit_rate() dicts to results[name]["commits"][protocol][members][mode]."""
    for members in (1, args.members):
        runs = {}
        try:
            for b in brokers:
                runs[b.name] = GroupRun(b.bootstrap, protocol, f"commit-{protocol}-{members}", args.partitions)
                if runs[b.name].cold_start(members) is None:
                    raise RuntimeError(f"{b.name}: commit group of {members} did not settle")
            for mode in ("sync", "async"):
                for _ in range(args.commit_repeat):
                    for b in brokers:
                        r = commit_rate(runs[b.name], mode, args.seconds, args.warmup, b.pid)
                        results[b.name]["commits"].setdefault(protocol, {}).setdefault(members, {}) \
                            .setdefault(mode, []).append(r)
        finally:
            for run in runs.values():
                run.close()


# --- driver and table --------------------------------------------------------------------------------

def run_profile(profile: str, args, results: dict) -> None:
    """Starts every broker with the profile's settings, then runs each measurement on them in turn."""
    with contextlib.ExitStack() as stack:
        brokers = []
        for name in args.brokers:
            broker = stack.enter_context(broker_for(name, profile, args.pybroker_tree))
            print(f"# {name} {broker.version} ({profile}) on {broker.bootstrap}", flush=True)
            results[name]["version"] = broker.version
            brokers.append(broker)
        runs = args.repeat if profile == "fast" else args.repeat_default
        for protocol in args.protocols:
            for i in range(runs):
                for b in brokers:
                    phases = results[b.name]["profiles"].setdefault(profile, {}).setdefault(
                        protocol, {"cold": [], "leave": [], "join": [], "errors": []})
                    stabilisation_run(b.bootstrap, protocol, f"stab-{protocol}-{profile}-{i}", args, phases)
            for b in brokers:
                print(f"#   {b.name} {protocol}: {fmt_phases(results[b.name]['profiles'][profile][protocol])}",
                      flush=True)
        if profile == args.commit_profile:
            for protocol in args.protocols:
                commits_interleaved(brokers, protocol, args, results)
                for b in brokers:
                    print(f"#   {b.name} commits {protocol}: {fmt_commits(results[b.name]['commits'][protocol])}",
                          flush=True)


def fmt_commits(r: dict) -> str:
    parts = []
    for members, modes in r.items():
        for mode, runs in modes.items():
            rates = " ".join(f"{x['rate']:.0f}" for x in runs)
            failed = sum(x["errors"] for x in runs)
            parts.append(f"{members}x {mode} [{rates}]/s" + (f" ({failed} failed)" if failed else ""))
    return "; ".join(parts)


def fmt_phases(r: dict) -> str:
    return ", ".join(f"{k} {fmt_list(r[k])}" for k in ("cold", "leave", "join")) + \
        (f"  errors: {r['errors']}" if r["errors"] else "")


def fmt_list(values) -> str:
    return "[" + " ".join("timeout" if v is None else f"{v:.2f}" for v in values) + "]"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cell(value, fmt="{:.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def ratio(a, b) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def print_tables(results: dict, args) -> None:
    names = [n for n in ("pybroker", "kafka") if n in results]
    both = len(names) == 2
    print(f"\n1. stabilisation of a {args.members}-member group on {args.partitions} partitions "
          f"(seconds, median of the runs; ratio = pybroker/kafka)")
    header = f"{'profile':<9}{'protocol':<10}{'phase':<7}{'runs':>5}" + \
        "".join(f"{n:>11}" for n in names) + (f"{'ratio':>9}" if both else "")
    print(header)
    for profile in args.profiles:
        for protocol in args.protocols:
            for phase in ("cold", "leave", "join"):
                vals = [median(results[n]["profiles"][profile][protocol][phase]) for n in names]
                runs = "/".join(str(len(results[n]["profiles"][profile][protocol][phase])) for n in names)
                line = f"{profile:<9}{protocol:<10}{phase:<7}{runs:>5}" + \
                    "".join(f"{cell(v):>11}" for v in vals)
                print(line + (f"{ratio(*vals):>9}" if both else ""))
    print(f"\n2. offset commits per second, median of {args.commit_repeat} runs alternating between the "
          f"brokers ({args.seconds:g} s each after {args.warmup:g} s of warm-up; async: at most "
          f"{ASYNC_WINDOW} unacknowledged per member; profile {args.commit_profile}).\n"
          f"   CPU: microseconds of broker / client-process CPU per commit (medians)")
    print(f"{'protocol':<10}{'members':>8}{'mode':>7}" + "".join(f"{n:>11}" for n in names) +
          (f"{'ratio':>9}" if both else "") + "".join(f"{n + ' CPU':>17}" for n in names) + f"{'failed':>9}")
    for protocol in args.protocols:
        for members in (1, args.members):
            for mode in ("sync", "async"):
                entries = [results[n]["commits"].get(protocol, {}).get(members, {}).get(mode, []) for n in names]
                vals = [median([e["rate"] for e in runs]) for runs in entries]
                cpu = [f"{cell(median([e['broker_us'] for e in runs]), '{:.0f}')} / "
                       f"{cell(median([e['client_us'] for e in runs]), '{:.0f}')}" for runs in entries]
                errs = "/".join(str(sum(e["errors"] for e in runs)) for runs in entries)
                line = f"{protocol:<10}{members:>8}{mode:>7}" + "".join(f"{cell(v, '{:,.0f}'):>11}" for v in vals)
                print(line + (f"{ratio(*vals):>9}" if both else "") + "".join(f"{c:>17}" for c in cpu)
                      + f"{errs:>9}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", default="pybroker,kafka", help="comma list of pybroker, kafka")
    p.add_argument("--profiles", default="fast,default", help="comma list of fast, default")
    p.add_argument("--commit-profile", default="fast", help="profile in which commits are measured")
    p.add_argument("--repeat", type=int, default=3, help="groups (cold, leave, join) per protocol, fast profile")
    p.add_argument("--repeat-default", type=int, default=1, help="the same in the default profile")
    p.add_argument("--seconds", type=float, default=1.5, help="duration of each commit measurement")
    p.add_argument("--warmup", type=float, default=0.5, help="uncounted commit load before each measurement")
    p.add_argument("--commit-repeat", type=int, default=3, help="measurements per commit cell and broker")
    p.add_argument("--protocols", default="classic,consumer", help="comma list of classic, consumer")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--partitions", type=int, default=20)
    p.add_argument("--pybroker-tree", help="run the broker from this checkout (e.g. a git archive of "
                   "HEAD with core/pybroker_core built) instead of this tree")
    p.add_argument("--trace", action="store_true", help="print each phase's rebalance callbacks")
    args = p.parse_args(argv)
    args.brokers = [b for b in args.brokers.split(",") if b]
    args.profiles = [x for x in args.profiles.split(",") if x]
    args.protocols = [x for x in args.protocols.split(",") if x]
    return args


def main(argv=None) -> int:
    global TRACE
    args = parse_args(argv)
    TRACE = args.trace
    if "kafka" in args.brokers and kafka_ref.find_libs() is None:
        print("# Kafka jars not found (run ci/fetch_kafka): pybroker only", flush=True)
        args.brokers = [b for b in args.brokers if b != "kafka"]
    client = confluent_kafka.version()
    client = client[0] if isinstance(client, tuple) else client
    print(f"# confluent-kafka {client} / librdkafka {confluent_kafka.libversion()[0]}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    t0 = time.monotonic()
    results = {name: {"profiles": {}, "commits": {}} for name in args.brokers}
    for profile in args.profiles:
        run_profile(profile, args, results)
    print_tables(results, args)
    print(f"\n# total {time.monotonic() - t0:.0f} s; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
