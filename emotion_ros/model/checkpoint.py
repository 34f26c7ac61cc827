"""Checkpoints of the trainable parts: fusion + adapter, LoRA, and the config they belong to.

A checkpoint directory holds
- ``modal.safetensors``: fusion.* and adapter.* tensors;
- ``adapter_config.json`` + ``adapter_model.safetensors``: the LoRA adapter in peft's own format
  (written by ``PeftModel.save_pretrained``, so peft/other tools can read it too);
- optionally ``reason/adapter_config.json`` + ``reason/adapter_model.safetensors``: the reasoning LoRA
  (emotion_ros.model.llm.REASONING_ADAPTER; peft's folder for a second adapter), used by the reasoning path;
- ``config.json``: ``{"format": ..., "model_config": ModelConfig.to_dict(), "files": {name: {sha256,
  bytes}}, "tensors": {...}, ...}``.

Loading uses safetensors only (never pickle), verifies every file's size and SHA-256 against config.json
(truncated / corrupt files are named), and checks tensor names and shapes against the model before
copying anything; every problem raises ``CheckpointError`` naming the file and what is wrong.

Writes are atomic and durable (``emotion_ros.io.atomic_dir(fsync=True)``): everything goes to a temporary
sibling directory, each file and the directory are fsynced, then the directory is renamed into place (an
existing checkpoint is moved aside first and removed after the swap). A run killed midway leaves at worst
a ``.NAME.*.tmp`` directory, never a half-written checkpoint under the real name.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emotion_ros.io import atomic_dir, sha256_file

FORMAT = "emotion_ros.trainable/1"
MODAL_FILE = "modal.safetensors"
LORA_FILE = "adapter_model.safetensors"
LORA_CONFIG = "adapter_config.json"
REASON_DIR = "reason"  # = emotion_ros.model.llm.REASONING_ADAPTER (peft names a second adapter's folder so)
REASON_LORA_FILE = f"{REASON_DIR}/{LORA_FILE}"
REASON_LORA_CONFIG = f"{REASON_DIR}/{LORA_CONFIG}"
CONFIG_FILE = "config.json"


# Submodules of the Conv-Attention before it followed the official ConvProAttention (issue 15): a checkpoint
# holding them cannot be mapped (the attention MLP had no 128-wide layer and no fc_att), only retrained.
LEGACY_FUSION_MODULES = ("mlp_audio", "mlp_global", "mlp_temporal", "attn_mlp", "conv_in", "blocks", "out")


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def modal_state(model) -> dict[str, torch.Tensor]:
    """fusion.* + adapter.* tensors (contiguous CPU copies)."""
    out = {}
    for prefix, module in model.trainable_modules().items():
        for k, v in module.state_dict().items():
            out[f"{prefix}.{k}"] = v.detach().cpu().contiguous().clone()
    return out


def lora_state(model, adapter: str = "default") -> dict[str, torch.Tensor]:
    """LoRA tensors of ``adapter`` named as in peft's adapter_model.safetensors."""
    if not model.llm.has_lora or adapter not in model.llm.model.peft_config:
        return {}
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous()
            for k, v in get_peft_model_state_dict(model.llm.model, adapter_name=adapter).items()}



def save_trainable(model, directory, metadata: dict | None = None) -> Path:
    """Write the trainable parts of ``model`` (EmotionLLaMA) to ``directory`` atomically."""
    save_lora = None
    if model.llm.has_lora:
        def save_lora(tmp: Path) -> None:
            model.llm.model.save_pretrained(str(tmp), safe_serialization=True)
    lora_shapes = {k: list(v.shape) for k, v in lora_state(model).items()}
    reason_shapes = {k: list(v.shape) for k, v in lora_state(model, REASON_DIR).items()}
    return write_checkpoint(directory, modal_state(model), model.cfg.to_dict(), save_lora, lora_shapes, metadata,
                            reason_shapes)


def write_checkpoint(directory, modal: dict[str, torch.Tensor], model_config: dict, save_lora=None,
                     lora_shapes: dict | None = None, metadata: dict | None = None,
                     reason_shapes: dict | None = None) -> Path:
    """Write a checkpoint folder atomically from plain parts (see the module docstring): ``modal`` tensors,
    the ModelConfig dict they belong to, and ``save_lora(tmp_dir)`` writing adapter_config.json +
    adapter_model.safetensors in peft's format (None: no LoRA). Used by save_trainable and by the
    official-checkpoint importer (emotion_ros.model.official), which has no model object to save.
    ``save_lora`` also writes the reasoning LoRA under ``reason/`` where the model has one (``reason_shapes``)."""
    directory = Path(directory).resolve()
    with atomic_dir(directory, fsync=True) as tmp:
        save_file(modal, str(tmp / MODAL_FILE), metadata={"format": FORMAT})
        if save_lora is not None:
            save_lora(tmp)
            (tmp / "README.md").unlink(missing_ok=True)  # peft's empty model card (names a local cache path)
        (tmp / REASON_DIR / "README.md").unlink(missing_ok=True)
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        from emotion_ros import __version__

        meta = {
            "format": FORMAT,
            "emotion_ros_version": __version__,
            "created_unix": time.time(),
            "model_config": model_config,
            "files": files,
            "tensors": {
                MODAL_FILE: {k: list(v.shape) for k, v in modal.items()},
                LORA_FILE: {k: list(v) for k, v in (lora_shapes or {}).items()},
                **({REASON_LORA_FILE: reason_shapes} if reason_shapes else {}),
            },
            "metadata": metadata or {},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory


def read_config(directory) -> dict:
    """Parsed config.json of a checkpoint (raises CheckpointError)."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(directory, "checkpoint directory does not exist")
    if not path.is_file():
        raise CheckpointError(path, "missing (not a checkpoint written by save_trainable?)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(path, f"corrupt JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(path, f"unknown format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                                    f"expected {FORMAT!r}")
    return meta


def recorded_config(directory):
    """The ModelConfig a checkpoint folder records (with ``trainable_path`` = the folder). For an imported
    official checkpoint it carries the paper profile with the local LLaMA / EVA / Whisper paths, so
    ``build_model(recorded_config(folder))`` runs it without repeating them."""
    from emotion_ros.model.config import ModelConfig

    meta = read_config(directory)
    try:
        cfg = ModelConfig.from_dict(meta["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(Path(directory) / CONFIG_FILE, f"model_config unreadable ({e})") from None
    cfg.trainable_path = str(directory)
    return cfg


def _verify_file(directory: Path, name: str, info: dict) -> Path:
    path = directory / name
    if not path.is_file():
        raise CheckpointError(path, "missing")
    size = path.stat().st_size
    if size != info.get("bytes"):
        raise CheckpointError(path, f"truncated or altered: {size} bytes, config.json records {info.get('bytes')}")
    if sha256_file(path) != info.get("sha256"):
        raise CheckpointError(path, "corrupt: SHA-256 differs from config.json")
    return path


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"not a readable safetensors file ({e})") from None


def _check(path: Path, got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise CheckpointError(path, f"tensor names differ from the model: missing {missing[:5]}"
                                    f"{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
                                    f"{'...' if len(extra) > 5 else ''}")
    for k, v in expected.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise CheckpointError(path, f"wrong shape for {k}: file {tuple(got[k].shape)}, model {tuple(v.shape)}")


def load_trainable(model, directory, strict_config: bool = False) -> dict:
    """Load fusion/adapter/LoRA weights written by save_trainable into ``model``. Returns config.json.

    Everything is validated before the first tensor is copied, so a failed load leaves the model as it
    was. ``strict_config`` also requires the recorded ModelConfig to equal the model's.
    """
    directory = Path(directory)
    meta = read_config(directory)
    trained_for = (meta.get("model_config") or {}).get("name")
    if trained_for and trained_for != model.cfg.name:
        raise CheckpointError(directory, f"was trained for the {trained_for!r} profile, but the model is "
                                         f"{model.cfg.name!r}: use profile {trained_for} or another checkpoint")
    if strict_config and meta.get("model_config") != model.cfg.to_dict():
        raise CheckpointError(directory / CONFIG_FILE, "recorded model_config differs from the model's config")
    files = meta.get("files") or {}
    if MODAL_FILE not in files:
        raise CheckpointError(directory / CONFIG_FILE, f"does not list {MODAL_FILE}")
    modal_path = _verify_file(directory, MODAL_FILE, files[MODAL_FILE])
    modal = _load_tensors(modal_path)
    expected_modal = {}
    for prefix, module in model.trainable_modules().items():
        for k, v in module.state_dict().items():
            expected_modal[f"{prefix}.{k}"] = v
    legacy = sorted(k for k in modal if k.split(".")[:2][-1] in LEGACY_FUSION_MODULES and k.startswith("fusion."))
    if legacy and not any(k in expected_modal for k in legacy):
        raise CheckpointError(modal_path, "was written with the old Conv-Attention layout (fusion.mlp_audio/"
                                          "mlp_global/mlp_temporal/attn_mlp/conv_in/blocks/out, before the fusion "
                                          "followed the official ConvProAttention): retrain these adapters with "
                                          "`python -m emotion_ros_training.train` for this version")
    _check(modal_path, modal, expected_modal)

    lora = None
    if model.llm.has_lora:
        for name in (LORA_FILE, LORA_CONFIG):
            if name not in files:
                raise CheckpointError(directory / name, "missing: the model has LoRA but the checkpoint has none")
        _verify_file(directory, LORA_CONFIG, files[LORA_CONFIG])
        lora_path = _verify_file(directory, LORA_FILE, files[LORA_FILE])
        _check_lora_config(directory / LORA_CONFIG, model)
        lora = _load_tensors(lora_path)
        _check(lora_path, lora, lora_state(model))
    elif LORA_FILE in files:
        raise CheckpointError(directory / LORA_FILE, "the checkpoint has LoRA weights but the model has no LoRA")
    reason = None
    if REASON_LORA_FILE in files:  # the reasoning LoRA: same rank and targets as the label LoRA
        if lora is None:
            raise CheckpointError(directory / REASON_LORA_FILE, "a reasoning LoRA needs the label LoRA, which "
                                                                "this model or checkpoint lacks")
        if REASON_LORA_CONFIG not in files:
            raise CheckpointError(directory / REASON_LORA_CONFIG, "missing beside the reasoning LoRA weights")
        _verify_file(directory, REASON_LORA_CONFIG, files[REASON_LORA_CONFIG])
        _check_lora_config(directory / REASON_LORA_CONFIG, model)
        reason_path = _verify_file(directory, REASON_LORA_FILE, files[REASON_LORA_FILE])
        reason = _load_tensors(reason_path)
        _check(reason_path, reason, lora)  # the label LoRA's names and shapes

    with torch.no_grad():
        for prefix, module in model.trainable_modules().items():
            sd = {k[len(prefix) + 1:]: v for k, v in modal.items() if k.startswith(prefix + ".")}
            module.load_state_dict(sd, strict=True)
        if lora is not None:
            from peft import set_peft_model_state_dict

            dev = model.llm.device
            res = set_peft_model_state_dict(model.llm.model, {k: v.to(dev) for k, v in lora.items()})
            unexpected = getattr(res, "unexpected_keys", [])
            if unexpected:
                raise CheckpointError(directory / LORA_FILE, f"peft did not accept keys {unexpected[:5]}")
        if reason is not None:
            from peft import set_peft_model_state_dict

            if not model.llm.has_reasoning_adapter:
                model.llm.add_reasoning_adapter()
            res = set_peft_model_state_dict(model.llm.model, {k: v.to(model.llm.device) for k, v in reason.items()},
                                            adapter_name=REASON_DIR)
            unexpected = getattr(res, "unexpected_keys", [])
            if unexpected:
                raise CheckpointError(directory / REASON_LORA_FILE, f"peft did not accept keys {unexpected[:5]}")
    return meta


def _check_lora_config(path: Path, model) -> None:
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(path, f"corrupt JSON ({e})") from None
    live = model.llm.model.peft_config["default"]
    for key in ("r", "lora_alpha"):
        if saved.get(key) != getattr(live, key):
            raise CheckpointError(path, f"{key}={saved.get(key)} but the model uses {getattr(live, key)}")
    if sorted(saved.get("target_modules") or []) != sorted(live.target_modules or []):
        raise CheckpointError(path, f"target_modules {saved.get('target_modules')} but the model uses "
                                    f"{sorted(live.target_modules)}")


def attach_file(directory, name: str, data: bytes) -> Path:
    """Add (or replace) one file in an existing checkpoint folder, recorded in config.json with its sha256
    and size like the others; the folder is swapped as a whole (emotion_ros.io.atomic_dir)."""
    directory = Path(directory)
    meta = read_config(directory)
    with atomic_dir(directory, fsync=True) as tmp:
        for p in directory.rglob("*"):
            rel = p.relative_to(directory).as_posix()
            if p.is_file() and rel not in (name, CONFIG_FILE):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, tmp / rel)
        (tmp / name).write_bytes(data)
        meta.setdefault("files", {})[name] = {"sha256": sha256_file(tmp / name), "bytes": len(data)}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory / name


def read_attached(directory, name: str) -> bytes | None:
    """The verified bytes of a file attached to a checkpoint (None when config.json lists no such file)."""
    directory = Path(directory)
    info = (read_config(directory).get("files") or {}).get(name)
    return None if info is None else _verify_file(directory, name, info).read_bytes()


def read_calibration(directory):
    """The checkpoint's fitted Calibration (emotion_ros.model.calibration), or None when it has none."""
    from emotion_ros.model.calibration import FILE, Calibration

    data = read_attached(directory, FILE)
    if data is None:
        return None
    try:
        return Calibration.from_json(data.decode(), str(Path(directory) / FILE))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(Path(directory) / FILE, f"unreadable calibration ({exc})") from None
