#!/usr/bin/env python3
"""Writes our protocol definitions (pybroker/protocol/defs/*.txt) from Kafka's JSON message specs.

    python ci/defs_from_spec.py ../shared/kafka-protocol-spec/message-4.3
    python ci/defs_from_spec.py --check ../shared/kafka-protocol-spec/message-4.3  # exit 1 on drift
    python ci/defs_from_spec.py --out /tmp/defs --only Vote BeginQuorumEpoch \\
        ../shared/kafka-protocol-spec/raft

Only facts cross over: names, types, version ranges, nullability, tags, defaults, field-level
flexible overrides, ignorable, mapKey, listeners, latestVersionUnstable and common structs.
`about` texts, `//` comments and the annotations without wire effect (`entityType`, `zeroCopy`)
are dropped. The grammar is described in pybroker/protocol/schema.py.

One file per API, named in snake_case (`produce.txt` holds ProduceRequest and ProduceResponse),
`headers.txt` for RequestHeader/ResponseHeader, one file per `data` schema. Leading `#` lines of
an existing file are hand-written notes and are kept when the file is rewritten. Every emitted
file is parsed back with our parser before anything is written.

The JSON `type: metadata` records (KRaft metadata log) have no kind in our grammar yet; they are
reported and skipped.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from pybroker.protocol import schema  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "pybroker", "protocol", "defs")
KINDS = ("request", "response", "header", "data")


def load_spec(path: str) -> dict:
    """A Kafka message JSON file with its whole-line `//` comments removed."""
    with open(path, encoding="utf-8") as fh:
        lines = [ln for ln in fh.read().splitlines() if not ln.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def norm_range(text) -> str:
    return schema.format_range(schema.parse_range(str(text)))


def base_name(spec: dict) -> str:
    """ProduceRequest -> Produce; headers and data schemas keep their name."""
    name, kind = spec["name"], spec["type"]
    suffix = kind.capitalize()
    if kind in ("request", "response") and name.endswith(suffix):
        return name[: -len(suffix)]
    return name


def file_name(spec: dict) -> str:
    if spec["type"] == "header":
        return "headers.txt"
    return schema.snake_case(base_name(spec)) + ".txt"


def format_default(value) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if text == "" or re.search(r"[\s#\"'\\]", text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def header_line(spec: dict) -> str:
    parts = [spec["type"], base_name(spec)]
    if "apiKey" in spec:
        parts.append(f"key={spec['apiKey']}")
    parts.append(f"versions={norm_range(spec['validVersions'])}")
    parts.append(f"flexible={norm_range(spec['flexibleVersions'])}")
    if spec.get("listeners"):
        parts.append("listeners=" + ",".join(spec["listeners"]))
    if spec.get("latestVersionUnstable"):
        parts.append("unstable")
    return " ".join(parts)


def field_attrs(f: dict) -> list:
    out = []
    tagged = f.get("taggedVersions")
    versions = norm_range(f.get("versions", tagged or "0+"))
    if versions != "0+" or tagged is not None:
        out.append("v" + versions)
    nullable = norm_range(f.get("nullableVersions", "none"))
    if nullable != "none":
        out.append("nullable=" + nullable)
    if tagged is not None:
        out += [f"tag={f['tag']}", "tagged=" + norm_range(tagged)]
    if "default" in f:
        out.append("default=" + format_default(f["default"]))
    if "flexibleVersions" in f:
        out.append("flexible=" + norm_range(f["flexibleVersions"]))
    if f.get("ignorable"):
        out.append("ignorable")
    if f.get("mapKey"):
        out.append("mapkey")
    return out


def field_lines(fields: list, depth: int) -> list:
    lines = []
    for f in fields:
        head = f"{'  ' * depth}{f['name']}: {f['type']}"
        lines.append(" ".join([head] + field_attrs(f)))
        lines += field_lines(f.get("fields", []), depth + 1)
    return lines


def message_lines(spec: dict) -> list:
    lines = [header_line(spec)] + field_lines(spec["fields"], 1)
    for struct in spec.get("commonStructs", []):
        versions = norm_range(struct.get("versions", "0+"))
        lines.append(f"  struct {struct['name']}" + ("" if versions == "0+" else f" v{versions}"))
        lines += field_lines(struct["fields"], 2)
    return lines


def _order(spec: dict) -> tuple:
    return (KINDS.index(spec["type"]), spec["name"])


def render(specs: list, notes: list) -> str:
    blocks = ["\n".join(message_lines(s)) for s in sorted(specs, key=_order)]
    head = "\n".join(notes) + "\n" if notes else ""
    return head + "\n\n".join(blocks) + "\n"


def existing_notes(path: str) -> list:
    if not os.path.exists(path):
        return []
    notes = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            notes.append(line.rstrip("\n"))
    return notes


def collect(spec_dir: str, only: set) -> dict:
    """file name -> list of specs, for the chosen messages of spec_dir."""
    files = {}
    for entry in sorted(os.listdir(spec_dir)):
        if not entry.endswith(".json"):
            continue
        spec = load_spec(os.path.join(spec_dir, entry))
        if only and spec["name"] not in only and base_name(spec) not in only:
            continue
        if spec["type"] not in KINDS:
            print(f"skipped {entry}: kind {spec['type']!r} is not in our grammar", file=sys.stderr)
            continue
        files.setdefault(file_name(spec), []).append(spec)
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec_dir", help="a folder of Kafka message JSON files")
    ap.add_argument("--out", default=DEFAULT_OUT, help="defs folder (default: ours)")
    ap.add_argument("--only", nargs="*", default=[], help="message names (Produce, ProduceRequest)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    args = ap.parse_args(argv)
    drift = 0
    for fname, specs in sorted(collect(args.spec_dir, set(args.only)).items()):
        path = os.path.join(args.out, fname)
        text = render(specs, existing_notes(path))
        schema.parse(text, fname)  # never write what our own parser rejects
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if old == text:
            continue
        drift += 1
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), path, f"{path} (from spec)"))
        else:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {path}")
    return 1 if args.check and drift else 0


if __name__ == "__main__":
    sys.exit(main())
