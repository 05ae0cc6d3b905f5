"""Kafka's small text files, byte for byte, written crash-safely (tmp file, fsync, rename, fsync dir).

  offset checkpoint (recovery-point-offset-checkpoint, log-start-offset-checkpoint,
  replication-offset-checkpoint, cleaner-offset-checkpoint):
      "0\n" <count> "\n" then per partition "<topic> <partition> <offset>\n"
  leader-epoch-checkpoint:  "0\n" <count> "\n" then "<epoch> <start_offset>\n" per entry
  partition.metadata:       "version: 0\ntopic_id: <22-char url-safe base64 uuid>" (no newline)
  .kafka_cleanshutdown:     {"broker_epoch":"<n>","version":"0"} (Jackson over a HashMap)
  meta.properties:          java.util.Properties: "#\n#<date>\n" then key=value lines
"""
import base64
import json
import os
import time
import uuid

from pybroker.log.errors import KafkaStorageError

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
PARTITION_METADATA = "partition.metadata"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
META_PROPERTIES = "meta.properties"
LOCK_FILE = ".lock"
TMP_SUFFIX = ".tmp"


class MalformedCheckpointError(KafkaStorageError):
    def __init__(self, path, line_no, reason):
        self.path = path
        self.line_no = line_no
        super().__init__(f"malformed checkpoint file {path} at line {line_no}: {reason}")


# ---- crash-safe writes ---------------------------------------------------------------------------

def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data, fsync=True):
    """Write `data` to path + ".tmp", fsync it, rename over `path`, fsync the directory."""
    tmp = path + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise MalformedCheckpointError(path, 0, f"not UTF-8 ({exc})") from exc


# ---- the versioned line format -------------------------------------------------------------------

def _encode_lines(lines):
    return ("0\n%d\n" % len(lines) + "".join(line + "\n" for line in lines)).encode()


def _decode_lines(path, text, fields):
    """Parse "0\\n<n>\\n" + n lines of `fields` whitespace-separated tokens."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        raise MalformedCheckpointError(path, len(lines) + 1, "missing version or count line")
    if lines[0].strip() != "0":
        raise MalformedCheckpointError(path, 1, f"unrecognized version {lines[0]!r}")
    try:
        count = int(lines[1])
    except ValueError:
        raise MalformedCheckpointError(path, 2, f"bad entry count {lines[1]!r}") from None
    if count != len(lines) - 2:
        raise MalformedCheckpointError(path, 2, f"expected {count} entries, found {len(lines) - 2}")
    out = []
    for i, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if len(parts) != fields:
            raise MalformedCheckpointError(path, i, f"expected {fields} fields in {line!r}")
        out.append(parts)
    return out


class OffsetCheckpointFile:
    """topic-partition -> offset, as `{(topic, partition): offset}`."""

    def __init__(self, path):
        self.path = path

    @staticmethod
    def encode(offsets):
        items = sorted(offsets.items())
        return _encode_lines([f"{t} {p} {o}" for (t, p), o in items])

    def write(self, offsets):
        write_atomic(self.path, self.encode(offsets))

    def read(self):
        text = _read_text(self.path)
        if text is None:
            return {}
        out = {}
        for line_no, (topic, partition, offset) in enumerate(_decode_lines(self.path, text, 3), start=3):
            try:
                out[(topic, int(partition))] = int(offset)
            except ValueError:
                raise MalformedCheckpointError(self.path, line_no, "non-numeric partition or offset") from None
        return out


class LeaderEpochCheckpointFile:
    """[(epoch, start_offset), ...] in epoch order."""

    def __init__(self, path):
        self.path = path

    @staticmethod
    def encode(entries):
        return _encode_lines([f"{e} {o}" for e, o in entries])

    def write(self, entries):
        write_atomic(self.path, self.encode(entries))

    def read(self):
        text = _read_text(self.path)
        if text is None:
            return []
        try:
            return [(int(e), int(o)) for e, o in _decode_lines(self.path, text, 2)]
        except ValueError:
            raise MalformedCheckpointError(self.path, 0, "non-numeric epoch or offset") from None


# ---- topic ids and partition.metadata ------------------------------------------------------------

ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA"


def uuid_to_str(raw16):
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, without padding (22 chars)."""
    return base64.urlsafe_b64encode(bytes(raw16)).decode().rstrip("=")


def uuid_from_str(text):
    if len(text) != 22:
        raise ValueError(f"a Kafka uuid has 22 characters, got {len(text)}: {text!r}")
    raw = base64.urlsafe_b64decode(text + "==")
    if len(raw) != 16:
        raise ValueError(f"{text!r} does not decode to 16 bytes")
    return raw


def random_uuid():
    """Kafka's Uuid.randomUuid: never the zero/metadata ids, never starting with '-'."""
    while True:
        text = uuid_to_str(uuid.uuid4().bytes)
        if text not in (ZERO_UUID, "AAAAAAAAAAAAAAAAAAAAAQ") and not text.startswith("-"):
            return text


class PartitionMetadataFile:
    def __init__(self, path):
        self.path = path

    @staticmethod
    def encode(topic_id):
        uuid_from_str(topic_id)
        return f"version: 0\ntopic_id: {topic_id}".encode()

    def write(self, topic_id):
        write_atomic(self.path, self.encode(topic_id))

    def exists(self):
        return os.path.exists(self.path)

    def read(self):
        """The topic id, or None when the file does not exist."""
        text = _read_text(self.path)
        if text is None:
            return None
        lines = text.split("\n")
        if len(lines) < 2 or lines[0].strip() != "version: 0" or not lines[1].startswith("topic_id: "):
            raise MalformedCheckpointError(self.path, 1, f"unexpected contents {text[:80]!r}")
        topic_id = lines[1][len("topic_id: "):].strip()
        try:
            uuid_from_str(topic_id)
        except ValueError as exc:
            raise MalformedCheckpointError(self.path, 2, str(exc)) from exc
        return topic_id


# ---- per log dir: clean shutdown marker and meta.properties -------------------------------------

class CleanShutdownFile:
    def __init__(self, log_dir):
        self.path = os.path.join(log_dir, CLEAN_SHUTDOWN_FILE)

    @staticmethod
    def encode(broker_epoch):
        # Jackson over Java's HashMap{"version", "broker_epoch"}: that map iterates broker_epoch first
        return json.dumps({"broker_epoch": str(broker_epoch), "version": "0"},
                          separators=(",", ":")).encode()

    def write(self, broker_epoch=-1):
        write_atomic(self.path, self.encode(broker_epoch))

    def exists(self):
        return os.path.exists(self.path)

    def read(self):
        """The broker epoch stored, or None when absent or unreadable."""
        text = _read_text(self.path)
        try:
            return int(json.loads(text).get("broker_epoch", "-1")) if text else None
        except (ValueError, AttributeError):
            return None

    def delete(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


_META_ORDER = ("node.id", "directory.id", "version", "cluster.id")  # java.util.Properties' order


def encode_properties(props, now=None):
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(now))
    keys = [k for k in _META_ORDER if k in props] + sorted(k for k in props if k not in _META_ORDER)
    return ("#\n#" + stamp + "\n" + "".join(f"{k}={props[k]}\n" for k in keys)).encode()


def decode_properties(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


class MetaProperties:
    """KRaft meta.properties: version=1, node.id, cluster.id, directory.id."""

    def __init__(self, log_dir):
        self.path = os.path.join(log_dir, META_PROPERTIES)

    def read(self):
        text = _read_text(self.path)
        return None if text is None else decode_properties(text)

    def write(self, props):
        write_atomic(self.path, encode_properties(props))
