"""Read and write rosbag2 bags (MCAP by default, sqlite3 too) with the pure-Python `rosbags` library.

Every failure to read a bag becomes one `BagError` whose message is a single sentence naming the file
and what is wrong with it, so an evaluation over many bags can record it and go on with the others.

Corruption is detectable: MCAP bags are written by the `mcap` library's writer (a rosbags storage plugin,
`CrcMcapStorage`), which stores a CRC-32 of every chunk as `ros2 bag record` does (rosbags' own MCAP writer
stores 0, "no CRC"). On reading, every chunk whose CRC is present is verified first; a corrupt chunk is
reported in `BagReader.corrupt_chunks` (and `.warnings`: bag, topics, time range, message count) and its
messages are skipped, and the rest of the bag is still read.
"""
from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionMode

from emotion_ros.bags.typestore import header_stamp_from_cdr, has_header, project_typestore, register_connection_types

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(Exception):
    """A bag cannot be opened, read or written. `reason` is short and machine-readable."""

    def __init__(self, path, reason: str, message: str):
        super().__init__(message)
        self.path = str(path)
        self.reason = reason


@dataclass
class BagMessage:
    """One stored message: raw CDR bytes plus where and when it was recorded."""

    topic: str
    msgtype: str
    timestamp_ns: int  # the bag's receive/log time
    data: bytes

    def decode(self, store=None):
        """The message as a rosbags dataclass (numpy arrays for byte fields: cheap for images)."""
        store = store or project_typestore()
        return store.deserialize_cdr(self.data, self.msgtype)

    def header_stamp_ns(self) -> int | None:
        """The std_msgs/Header stamp for types that start with one, read without full decoding."""
        return header_stamp_from_cdr(self.data) if has_header(self.msgtype) else None


def _data_file(path: Path) -> Path:
    """The storage file inside a bag folder (named in errors so the user knows which file is bad)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        if len(files) == 1:
            return files[0]
    return path


def _describe(path: Path, err: Exception) -> tuple[str, str]:
    """Turn a rosbags/sqlite/OS error into (reason, one sentence)."""
    text = str(err).strip().rstrip(".")
    low = text.lower()
    if isinstance(err, FileNotFoundError) and "metadata" in low:
        return "missing_metadata", (
            f"Bag '{path}' has no metadata.yaml: a rosbag2 folder needs it "
            "(pass its .mcap or .db3 file directly, or restore the metadata file)."
        )
    if isinstance(err, FileNotFoundError):
        return "not_found", f"Bag '{path}' does not exist."
    if "yaml" in low or "metadata" in low:
        return "bad_metadata", f"Bag '{path}' has an invalid metadata.yaml ({text})."
    path = _data_file(path)
    if "end magic" in low:
        return "truncated", (
            f"Bag '{path}' is truncated: its MCAP file ends before the closing footer "
            "(the recording was interrupted or the copy is incomplete)."
        )
    if "truncated record" in low or "unexpected end" in low:
        return "corrupt", f"Bag '{path}' is corrupt: a record runs past the end of its data ({text})."
    if "magic" in low:
        return "not_mcap", f"Bag '{path}' is not a valid MCAP file: its leading magic bytes are wrong ({text})."
    if "unexpected record" in low or "invalid" in low:
        return "corrupt", f"Bag '{path}' is corrupt: its record structure is broken ({text})."
    if isinstance(err, sqlite3.DatabaseError) or "database" in low:
        return "corrupt", f"Bag '{path}' has a broken sqlite3 database ({text})."
    if "crc" in low or "checksum" in low:
        return "corrupt", f"Bag '{path}' is corrupt: a checksum does not match ({text})."
    if isinstance(err, (UnicodeDecodeError, struct.error, ValueError, IndexError)):
        return "corrupt", f"Bag '{path}' is corrupt: its records do not parse ({type(err).__name__}: {text})."
    return "unreadable", f"Bag '{path}' cannot be read: {type(err).__name__}: {text}."


@dataclass
class CorruptChunk:
    """An MCAP chunk whose stored CRC-32 does not match its data (or that does not decompress)."""

    file: str
    offset: int
    topics: list[str]
    start_ns: int
    end_ns: int
    messages: int
    error: str

    def sentence(self, bag_start_ns: int | None = None) -> str:
        t0 = self.start_ns if bag_start_ns is None else bag_start_ns
        return (f"Bag '{self.file}': a chunk failed its CRC check ({self.error}); its {self.messages} messages on "
                f"{', '.join(self.topics) or '(no topic)'} between {(self.start_ns - t0) / 1e9:.2f} s and "
                f"{(self.end_ns - t0) / 1e9:.2f} s were skipped, the rest of the bag is used.")


def _mcap_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".mcap" else []
    return sorted(p for p in path.iterdir() if p.suffix == ".mcap")


def verify_mcap_chunks(file: Path) -> tuple[list[CorruptChunk], int]:
    """Check every chunk of an MCAP file against its stored CRC-32 (the `mcap` library's reader).

    Returns (corrupt chunks, number of chunks whose CRC was checked); chunks that carry no CRC (written
    by rosbags) are not counted as checked. An unreadable summary returns ([], 0) and lets the normal
    reader report the problem.
    """
    from mcap.data_stream import ReadDataStream
    from mcap.records import Chunk
    from mcap.reader import make_reader
    from mcap.stream_reader import get_chunk_data_stream

    corrupt, checked = [], 0
    try:
        with open(file, "rb") as f:
            summary = make_reader(f).get_summary()
            if summary is None:
                return [], 0
            for index in summary.chunk_indexes:
                f.seek(index.chunk_start_offset + 1 + 8)
                chunk = Chunk.read(ReadDataStream(f))
                if chunk.uncompressed_crc == 0:
                    continue
                checked += 1
                try:
                    get_chunk_data_stream(chunk, validate_crc=True)
                    continue
                except Exception as err:  # CRC mismatch, or data that no longer decompresses
                    error = type(err).__name__
                topics = sorted({summary.channels[c].topic for c in index.message_index_offsets
                                 if c in summary.channels})
                count = _chunk_message_count(f, index)
                corrupt.append(CorruptChunk(str(file), int(index.chunk_start_offset), topics,
                                            int(index.message_start_time), int(index.message_end_time), count, error))
    except Exception:
        return [], 0
    return corrupt, checked


def _chunk_message_count(f, index) -> int:
    """Messages in a chunk, from its message index records (which lie outside the chunk's data)."""
    from mcap.data_stream import ReadDataStream
    from mcap.records import MessageIndex

    total = 0
    for offset in index.message_index_offsets.values():
        f.seek(offset + 1 + 8)
        total += len(MessageIndex.read(ReadDataStream(f)).records)
    return total


def _mcap_messages_skipping(files: list[Path], skip: set[tuple[str, int]], topics: set[str] | None,
                            start_ns: int | None, stop_ns: int | None) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log_time, data) in time order from the chunks not in `skip` ((file, offset)).

    Chunks are opened lazily, in the order of their first message (each source first yields a marker
    at its start time), so memory holds only the chunks that overlap in time, as rosbags does."""
    import heapq

    from mcap.data_stream import ReadDataStream
    from mcap.records import Chunk, Message
    from mcap.reader import make_reader
    from mcap.stream_reader import breakup_chunk

    handles = [open(p, "rb") for p in files]
    try:
        sources = []
        for fi, (path, f) in enumerate(zip(files, handles)):
            summary = make_reader(f).get_summary()
            for index in summary.chunk_indexes:
                if (str(path), index.chunk_start_offset) in skip:
                    continue
                chans = {cid: summary.channels[cid] for cid in index.message_index_offsets if cid in summary.channels}
                if topics is not None and not any(c.topic in topics for c in chans.values()):
                    continue

                def source(f=f, index=index, summary=summary, fi=fi):
                    yield (index.message_start_time, fi, index.chunk_start_offset, -1, None)
                    f.seek(index.chunk_start_offset + 1 + 8)
                    records = breakup_chunk(Chunk.read(ReadDataStream(f)))
                    out = []
                    for i, rec in enumerate(records):
                        if not isinstance(rec, Message):
                            continue
                        chan = summary.channels[rec.channel_id]
                        if topics is not None and chan.topic not in topics:
                            continue
                        if (start_ns is not None and rec.log_time < start_ns) or \
                                (stop_ns is not None and rec.log_time >= stop_ns):
                            continue
                        msgtype = summary.schemas[chan.schema_id].name if chan.schema_id else ""
                        out.append((rec.log_time, fi, index.chunk_start_offset, i, (chan.topic, msgtype, rec.data)))
                    out.sort()
                    yield from out

                sources.append(source())
        for log_time, _fi, _off, _i, item in heapq.merge(*sources):
            if item is not None:
                topic, msgtype, data = item
                yield topic, msgtype, int(log_time), bytes(data)
    finally:
        for f in handles:
            f.close()


class BagReader:
    """Open a bag for reading: a rosbag2 folder (MCAP or sqlite3) or a single .mcap file.

    Usage: `with BagReader(path) as bag: for m in bag.messages(["/audio"]): ...`
    """

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        self._reader = None
        self.store = project_typestore()
        self.verify = verify
        self.corrupt_chunks: list[CorruptChunk] = []
        self.crc_checked_chunks = 0

    def open(self) -> "BagReader":
        if not self.path.exists():
            raise BagError(self.path, "not_found", f"Bag '{self.path}' does not exist.")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError(self.path, "missing_metadata", _describe(self.path, FileNotFoundError("metadata"))[1])
        try:
            self._reader = Reader(self.path)
            self._reader.open()
            register_connection_types(self.store, self._reader.connections)
            if self.verify:
                self.corrupt_chunks, self.crc_checked_chunks = [], 0
                for file in _mcap_files(self.path):
                    bad, checked = verify_mcap_chunks(file)
                    self.corrupt_chunks += bad
                    self.crc_checked_chunks += checked
        except BagError:
            raise
        except Exception as err:  # rosbags raises several types; all mean "unreadable bag"
            self._reader = None
            reason, message = _describe(self.path, err)
            raise BagError(self.path, reason, message) from err
        return self

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def __enter__(self) -> "BagReader":
        return self.open() if self._reader is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def reader(self):
        if self._reader is None:
            self.open()
        return self._reader

    @property
    def warnings(self) -> list[str]:
        """One sentence per corrupt chunk (bag, topics, time range from the bag start)."""
        start = int(self.reader.start_time) if self._reader is not None else None
        return [c.sentence(start) for c in self.corrupt_chunks]

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type."""
        return {c.topic: c.msgtype for c in self.reader.connections}

    @property
    def message_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
        return counts

    @property
    def start_ns(self) -> int:
        return int(self.reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self.reader.end_time)

    @property
    def message_count(self) -> int:
        return int(self.reader.message_count)

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages in time order (ties keep storage order); corrupt data raises BagError mid-way."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self.reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        if self.corrupt_chunks:  # read around them with the mcap library (rosbags would stop at the first)
            skip = {(c.file, c.offset) for c in self.corrupt_chunks}
            try:
                for topic, msgtype, t, data in _mcap_messages_skipping(
                        _mcap_files(self.path), skip, wanted, start_ns, stop_ns):
                    yield BagMessage(topic, msgtype, t, data)
            except Exception as err:
                reason, message = _describe(self.path, err)
                raise BagError(self.path, reason, message) from err
            return
        try:
            for conn, timestamp, data in self.reader.messages(conns, start=start_ns, stop=stop_ns):
                yield BagMessage(conn.topic, conn.msgtype, int(timestamp), bytes(data))
        except BagError:
            raise
        except Exception as err:
            reason, message = _describe(self.path, err)
            raise BagError(self.path, reason, message) from err

    def decoded(self, topics: Iterable[str] | None = None) -> Iterator[tuple[BagMessage, object]]:
        """(BagMessage, deserialised rosbags message) pairs in time order."""
        for m in self.messages(topics):
            try:
                msg = m.decode(self.store)
            except Exception as err:
                raise BagError(self.path, "bad_message", (
                    f"Bag '{self.path}' has a message on {m.topic} at t={m.timestamp_ns} ns that does not "
                    f"decode as {m.msgtype} ({type(err).__name__}: {err})."
                )) from err
            yield m, msg


class CrcMcapStorage:
    """rosbags storage plugin (its StorageWriter protocol) that writes the MCAP file with the `mcap`
    library's writer: zstd chunks with CRC-32s, the rosbag2 metadata record, channel QoS metadata."""

    def __init__(self, path: Path, compression: CompressionMode) -> None:
        from importlib.metadata import version

        from mcap.writer import CompressionType, Writer as McapFileWriter

        self.path = path / f"{path.name}.mcap"
        self._file = self.path.open("xb")
        # chunks of 1 MiB (the mcap default; rosbag2's is 768 KiB): a corrupt chunk costs at most ~1 s of video
        self._writer = McapFileWriter(self._file, compression=CompressionType.ZSTD, enable_crcs=True)
        self._writer.start(profile="ros2", library=f"emotion_ros (mcap {version('mcap')})")
        self._schemas: dict[str, int] = {}
        self._channels: dict[int, int] = {}

    def add_msgtype(self, connection) -> None:
        from rosbags.interfaces import MessageDefinitionFormat

        encoding = "ros2msg" if connection.msgdef.format == MessageDefinitionFormat.MSG else "ros2idl"
        self._schemas[connection.msgtype] = self._writer.register_schema(
            connection.msgtype, encoding, connection.msgdef.data.encode())

    def add_connection(self, connection, offered_qos_profiles: str) -> None:
        self._channels[connection.id] = self._writer.register_channel(
            connection.topic, connection.ext.serialization_format, self._schemas[connection.msgtype],
            {"offered_qos_profiles": offered_qos_profiles})

    def write(self, connection, timestamp: int, data) -> None:
        self._writer.add_message(self._channels[connection.id], int(timestamp), bytes(data), int(timestamp))

    def close(self, version: int, metadata: str) -> None:
        self._writer.add_metadata("rosbag2", {"serialized_metadata": metadata})
        self._writer.finish()
        self._file.close()

    def abort(self) -> None:
        self._file.close()


class _RosbagWriter(Writer):
    """rosbags' rosbag2 writer (folder, metadata.yaml, type hashes) with CRC-carrying MCAP storage."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: CrcMcapStorage}


class BagWriter:
    """Create a new bag (folder) and write raw CDR bytes or rosbags messages into it.

    Usage: `with BagWriter(path) as bag: bag.write("/audio", t_ns, msg_or_bytes, AUDIO_CHUNK)`.
    Topics are added on first write; the storage is MCAP unless storage="sqlite3".
    """

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, not {storage!r}")
        self.path = Path(path)
        self.storage = storage
        self.overwrite = overwrite
        self.store = project_typestore()
        self._writer = None
        self._conns: dict[str, object] = {}
        self.count = 0

    def open(self) -> "BagWriter":
        if self.path.exists():
            if not self.overwrite:
                raise BagError(self.path, "exists", f"Bag '{self.path}' already exists (refusing to overwrite it "
                                                    "without overwrite=True).")
            import shutil

            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = _RosbagWriter(self.path, version=9, storage_plugin=STORAGES[self.storage])
            self._writer.open()
        except Exception as err:
            raise BagError(self.path, "write_failed", f"Bag '{self.path}' cannot be created: {err}.") from err
        return self

    def __enter__(self) -> "BagWriter":
        return self.open() if self._writer is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def add_topic(self, topic: str, msgtype: str):
        if topic in self._conns:
            return self._conns[topic]
        if msgtype not in self.store.types:
            raise BagError(self.path, "unknown_type", f"Cannot write {topic}: message type {msgtype} is unknown.")
        self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        return self._conns[topic]

    def write(self, topic: str, timestamp_ns: int, msg, msgtype: str | None = None) -> None:
        """Write one message; `msg` is raw CDR bytes or a rosbags message (msgtype then optional)."""
        if self._writer is None:
            self.open()
        if isinstance(msg, (bytes, bytearray, memoryview)):
            if msgtype is None and topic not in self._conns:
                raise ValueError(f"msgtype needed for the first raw message on {topic}")
            data = bytes(msg)
        else:
            msgtype = msgtype or msg.__msgtype__
            data = bytes(self.store.serialize_cdr(msg, msgtype))
        conn = self._conns.get(topic) or self.add_topic(topic, msgtype)
        self._writer.write(conn, int(timestamp_ns), data)
        self.count += 1

    def write_message(self, m: BagMessage) -> None:
        self.write(m.topic, m.timestamp_ns, m.data, m.msgtype)


def bag_info(path: str | Path) -> dict:
    """Summary of a bag (for CLIs and reports): topics, types, counts, time span."""
    with BagReader(path) as bag:
        return {
            "path": str(path),
            "topics": bag.topics,
            "message_counts": bag.message_counts,
            "message_count": bag.message_count,
            "start_ns": bag.start_ns,
            "end_ns": bag.end_ns,
            "duration_s": (bag.end_ns - bag.start_ns) / 1e9,
        }


def read_all(path: str | Path, topics: Iterable[str] | None = None) -> list[BagMessage]:
    """All (selected) messages of a bag in time order; reading errors raise BagError."""
    with BagReader(path) as bag:
        return list(bag.messages(topics))


def copy_bag(src: str | Path, dst: str | Path, topics: Iterable[str] | None = None, storage: str = "mcap") -> int:
    """Copy (a topic subset of) a bag, e.g. to convert sqlite3 <-> MCAP. Returns the message count."""
    with BagReader(src) as reader, BagWriter(dst, storage=storage) as writer:
        for m in reader.messages(topics):
            writer.write_message(m)
        return writer.count
