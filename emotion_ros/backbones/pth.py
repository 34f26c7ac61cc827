"""Opening PyTorch ``.pth`` files safely: ``torch.load(weights_only=True)`` with one clear error per failure.

Used for files the user brings (the LAVIS ``eva_vit_g.pth``, the official Emotion-LLaMAv2 checkpoints).
``weights_only=True`` is PyTorch's restricted unpickler: tensors, containers and plain values only, never
code. Files are memory-mapped when their format allows it (the official checkpoint is ~0.9 GB, EVA 1.9 GB),
so opening them costs no copy.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path


class WeightFileError(ValueError):
    """A weight file is missing, unreadable, unsafe, or its tensors do not fit: names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def load_pth(path) -> object:
    """The object stored in ``path`` (tensors on the CPU), loaded with ``torch.load(weights_only=True)``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightFileError(path, "file not found")
    if path.stat().st_size == 0:
        raise WeightFileError(path, "empty file (0 bytes)")
    mmap = zipfile.is_zipfile(path)  # torch >= 1.6 zip format: mmap-able; older pickles are read whole
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        text = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "weights only" in text.lower() or "weights_only" in text:
            what = f"it references {found.group(1)}" if found else text.strip().splitlines()[0]
            raise WeightFileError(path, "refused: the file needs code to unpickle (only tensors and plain "
                                        f"values are accepted with weights_only=True; {what})") from None
        raise WeightFileError(path, f"not a readable PyTorch file ({text.strip().splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        msg = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise WeightFileError(path, f"truncated or corrupt PyTorch file ({msg})") from None
