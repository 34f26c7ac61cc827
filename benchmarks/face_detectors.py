"""Face detectors for the nano face stream, measured on real photos (the table in emotion_ros/backbones/fer.py).

Three real photos that ship in installed packages (skimage.data.astronaut, matplotlib's grace_hopper.jpg,
skimage.data.camera) are each put into 640x480 frames (grey noise background) at 4 scales x 2 flips x
3 brightness levels x 3 face positions = 72 frames per photo; a hit = the detector's most prominent face has
its centre inside the hand-read face box. False alarms: detections on 7 face-free scikit-image photos,
20 noise frames and a blank frame. One thread.

    .venv/bin/python benchmarks/face_detectors.py [--haar]

``--haar`` adds OpenCV's Haar cascade (fer's file and settings); it needs `opencv-python-headless<5`
(5.x dropped the cascades), which the project does not install: `pip install 'opencv-python-headless<5'`.
Writes out/bench/face_detectors.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from emotion_ros.backbones import fer
from emotion_ros.backbones.packages import BLAZEFACE_FULL, BLAZEFACE_SHORT, locate_npm

ROOT = Path(__file__).resolve().parents[1]
W, H = 640, 480
SCALES = (0.4, 0.6, 0.8, 1.0)
BRIGHTNESS = (1.0, 0.5, 0.25)
POSITIONS = ((0.5, 0.5), (0.3, 0.45), (0.72, 0.4))


def photos() -> dict:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.array(im.convert("RGB"))
    # face boxes (x1, y1, x2, y2) read by hand from the photos
    return {"astronaut": (skimage.data.astronaut(), (170, 55, 275, 180)),
            "grace_hopper": (hopper, (150, 100, 380, 345)),
            "camera": (np.repeat(skimage.data.camera()[..., None], 3, axis=2), (170, 110, 270, 215))}


def frame_with(photo, box, scale, flip, bright, pos, rng):
    from PIL import Image

    im = photo[:, ::-1] if flip else photo
    x1, y1, x2, y2 = box
    if flip:
        x1, x2 = photo.shape[1] - x2, photo.shape[1] - x1
    h, w = im.shape[:2]
    nh, nw = int(h * scale), int(w * scale)
    im = np.array(Image.fromarray(np.ascontiguousarray(im)).resize((nw, nh), Image.BILINEAR)).astype(np.float32)
    ox = int(pos[0] * W - (x1 + x2) / 2 * scale)
    oy = int(pos[1] * H - (y1 + y2) / 2 * scale)
    canvas = np.full((H, W, 3), 110, np.float32) + rng.normal(0, 8, (H, W, 3))
    sx, sy, dx, dy = max(0, -ox), max(0, -oy), max(0, ox), max(0, oy)
    cw, ch = min(nw - sx, W - dx), min(nh - sy, H - dy)
    canvas[dy:dy + ch, dx:dx + cw] = im[sy:sy + ch, sx:sx + cw]
    frame = np.clip(canvas * bright, 0, 255).astype(np.uint8)
    return frame, (x1 * scale + ox, y1 * scale + oy, x2 * scale + ox, y2 * scale + oy)


def hit(faces, box) -> bool:
    if not faces:
        return False
    f = max(faces, key=lambda f: (f.box[2] * f.box[3], f.score))  # FaceExpert's choice
    cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def measure(det, rng) -> dict:
    import skimage.data

    hits, times = {}, []
    for (name, (photo, box)), scale, flip, bright, pos in itertools.product(
            photos().items(), SCALES, (False, True), BRIGHTNESS, POSITIONS):
        frame, fbox = frame_with(photo, box, scale, flip, bright, pos, rng)
        t = time.perf_counter()
        faces = det(frame)
        times.append(time.perf_counter() - t)
        hits.setdefault(name, {}).setdefault(str(scale), []).append(hit(faces, fbox))
    negatives = {}
    for n in ("chelsea", "coffee", "rocket", "brick", "coins", "moon", "horse"):
        im = getattr(skimage.data, n)()
        negatives[n] = len(det(im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=2)))
    noise = sum(bool(det(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))) for _ in range(20))
    return {
        "hits": sum(sum(v) for p in hits.values() for v in p.values()),
        "frames": sum(len(v) for p in hits.values() for v in p.values()),
        "per_photo": {p: sum(sum(v) for v in s.values()) for p, s in hits.items()},
        "per_photo_scale": {p: {k: f"{sum(v)}/{len(v)}" for k, v in s.items()} for p, s in hits.items()},
        "median_ms": 1000 * float(np.median(times)),
        "false_alarms_photos": negatives, "noise_frames_with_detection": noise,
        "blank_detections": len(det(np.zeros((H, W, 3), np.uint8))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--haar", action="store_true", help="also measure the Haar cascade (needs cv2 < 5)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dets = {"blazeface_full": fer.BlazeFaceDetector(locate_npm(BLAZEFACE_FULL, verify=True)),
            "blazeface_short": fer.BlazeFaceDetector(locate_npm(BLAZEFACE_SHORT, verify=True))}
    if args.haar:
        dets["haar"] = fer.HaarDetector()
    results = {name: measure(det, np.random.default_rng(0)) for name, det in dets.items()}
    print("| detector | hits | astronaut | Grace Hopper | cameraman | median ms | false alarms (photos) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        pp = r["per_photo"]
        print(f"| {name} | {r['hits']}/{r['frames']} | {pp['astronaut']}/72 | {pp['grace_hopper']}/72 | "
              f"{pp['camera']}/72 | {r['median_ms']:.1f} | {sum(r['false_alarms_photos'].values())} |")
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "face_detectors.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
