"""Rendered cartoon faces with controlled, time-varying expressions (numpy + Pillow, no assets).

The expression is a handful of action-unit-like parameters (mouth curvature/openness/width, brow
angle/height, eye openness) whose apex values differ per MER6 emotion, in the spirit of FACS: happy
pulls the lip corners up (AU12) and narrows the eyes (AU6); sad raises the inner brows (AU1) and turns
the lip corners down (AU15); angry lowers and knits the brows (AU4) and tightens the lids (AU7);
worried raises the inner brows and stretches the lips (AU1+AU20); surprise raises the brows (AU1+2),
widens the eyes (AU5) and drops the jaw (AU26).

Everything the model should NOT use is randomised per clip: identity (skin tone, face shape, size,
hair, clothes), position and head motion, lighting direction/brightness/colour cast, background
texture and colour, sensor noise. The expression evolves onset -> apex -> offset over the clip, with
blinks and speech-driven mouth motion.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Expression:
    mouth_curve: float = 0.0  # -1 corners down .. +1 corners up
    mouth_open: float = 0.05  # 0 closed .. 1 wide open
    mouth_width: float = 1.0  # relative to the face's neutral mouth
    brow_angle: float = 0.0  # + inner ends raised (sad/worried), - inner ends lowered (angry)
    brow_raise: float = 0.0  # -0.5 lowered .. 1 raised high
    eye_open: float = 1.0  # 0 shut .. 1.5 wide

    def lerp(self, other: Expression, a: float) -> Expression:
        return Expression(*[x + a * (y - x) for x, y in zip(astuple_(self), astuple_(other))])

    def to_dict(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def astuple_(e: Expression) -> tuple:
    return (e.mouth_curve, e.mouth_open, e.mouth_width, e.brow_angle, e.brow_raise, e.eye_open)


NEUTRAL = Expression()
APEX: dict[str, Expression] = {
    "neutral": NEUTRAL,
    "happy": Expression(mouth_curve=1.0, mouth_open=0.28, mouth_width=1.3, brow_angle=0.0, brow_raise=0.1, eye_open=0.7),
    "sad": Expression(mouth_curve=-1.0, mouth_open=0.0, mouth_width=0.9, brow_angle=0.9, brow_raise=0.05, eye_open=0.6),
    "angry": Expression(mouth_curve=-0.4, mouth_open=0.0, mouth_width=0.85, brow_angle=-1.4, brow_raise=-0.9, eye_open=0.7),
    "worried": Expression(mouth_curve=-0.3, mouth_open=0.1, mouth_width=1.15, brow_angle=0.6, brow_raise=0.45, eye_open=1.15),
    "surprise": Expression(mouth_curve=0.0, mouth_open=1.0, mouth_width=0.55, brow_angle=0.0, brow_raise=1.0, eye_open=1.45),
}

SKIN_TONES = np.array([
    (255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
    (92, 56, 30), (255, 205, 170), (234, 192, 134), (170, 120, 80), (120, 75, 45),
], dtype=np.float32)
HAIR = np.array([(20, 15, 10), (60, 40, 25), (110, 75, 40), (180, 140, 80), (200, 190, 170), (120, 30, 20)],
                dtype=np.float32)


@dataclass(frozen=True)
class Identity:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int  # 0 short cap, 1 bald, 2 long
    shirt: tuple[int, int, int]
    iris: tuple[int, int, int]
    aspect: float  # face height / width
    scale: float  # face half-width as a fraction of the image width
    cx: float  # face centre as a fraction of the image size
    cy: float


@dataclass(frozen=True)
class Scene:
    kind: str  # background texture kind
    light_dir: float  # radians
    light_strength: float
    brightness: float
    cast: tuple[float, float, float]
    noise: float  # sensor noise sigma (0-255 scale)


def _rgb(v) -> tuple[int, int, int]:
    return tuple(int(np.clip(x, 0, 255)) for x in v)


def sample_identity(rng: np.random.Generator) -> Identity:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.06) + rng.normal(0, 6, 3)
    hair = HAIR[rng.integers(len(HAIR))] + rng.normal(0, 8, 3)
    scale = rng.uniform(0.17, 0.26)
    aspect = rng.uniform(1.15, 1.45)
    return Identity(
        skin=_rgb(skin), hair=_rgb(hair), hair_style=int(rng.integers(3)), shirt=_rgb(rng.uniform(20, 235, 3)),
        iris=_rgb(rng.choice([(60, 40, 20), (40, 80, 140), (50, 110, 60), (30, 30, 30)]) + rng.normal(0, 10, 3)),
        aspect=aspect, scale=scale,
        cx=rng.uniform(0.5 - (0.45 - scale), 0.5 + (0.45 - scale)),
        cy=rng.uniform(0.42, 0.56),
    )


BACKGROUNDS = ("gradient", "stripes", "checker", "blobs", "noise", "shapes")


def sample_scene(rng: np.random.Generator) -> Scene:
    return Scene(
        kind=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        light_dir=float(rng.uniform(0, 2 * np.pi)),
        light_strength=float(rng.uniform(0.0, 0.35)),
        brightness=float(rng.uniform(0.7, 1.15)),
        cast=tuple(float(x) for x in rng.uniform(0.9, 1.1, 3)),
        noise=float(rng.uniform(1.0, 6.0)),
    )


def render_background(scene: Scene, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A textured background (H, W, 3) uint8."""
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if scene.kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = ((np.cos(a) * xx + np.sin(a) * yy) / max(h, w) + 1) / 2
    elif scene.kind == "stripes":
        a, period = rng.uniform(0, np.pi), rng.uniform(8, 40) * w / 224
        t = (np.sin((np.cos(a) * xx + np.sin(a) * yy) * 2 * np.pi / period) + 1) / 2
    elif scene.kind == "checker":
        s = rng.uniform(10, 40) * w / 224
        t = ((np.floor(xx / s) + np.floor(yy / s)) % 2) * 0.8 + 0.1
    elif scene.kind == "blobs":
        t = np.zeros((h, w), np.float32)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.4) * w
            t += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        t = t / t.max()
    elif scene.kind == "noise":
        small = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        t = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32) / 255
    else:  # shapes: flat colour with a few random rectangles
        t = np.zeros((h, w), np.float32)
        img = Image.fromarray(np.zeros((h, w), np.uint8))
        d = ImageDraw.Draw(img)
        for _ in range(5):
            x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
            d.rectangle([x0, y0, x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(0.1, 0.5) * h],
                        fill=int(rng.uniform(60, 255)))
        t = np.asarray(img, np.float32) / 255
    bg = c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]
    return np.clip(bg, 0, 255).astype(np.uint8)


def expression_track(emotion: str, n: int, rng: np.random.Generator, intensity: float = 1.0) -> list[Expression]:
    """Per-frame expression: onset -> apex -> offset (partial), apex around the clip's middle."""
    apex = NEUTRAL.lerp(APEX[emotion], intensity)
    # small per-clip idiosyncrasy so the same emotion never looks identical
    apex = Expression(*[v + rng.normal(0, 0.06) for v in astuple_(apex)])
    on0 = rng.uniform(0.0, 0.2)
    on1 = rng.uniform(0.3, 0.45)
    off0 = rng.uniform(0.6, 0.8)
    end_level = rng.uniform(0.35, 0.9)
    out = []
    for i in range(n):
        u = (i + 0.5) / n
        if u < on0:
            a = 0.0
        elif u < on1:
            a = (u - on0) / (on1 - on0)
        elif u < off0:
            a = 1.0
        else:
            a = 1.0 - (1.0 - end_level) * (u - off0) / (1.0 - off0)
        a = 0.5 - 0.5 * np.cos(np.pi * a)  # smooth ease in/out
        out.append(NEUTRAL.lerp(apex, float(a)))
    return out


def apex_expression(track: list[Expression]) -> Expression:
    """The frame of strongest expression (the paper's peak frame, by total deviation from neutral)."""
    dev = [sum(abs(a - b) for a, b in zip(astuple_(e), astuple_(NEUTRAL))) for e in track]
    return track[int(np.argmax(dev))]


def _quad(p0, p1, p2, k=12):
    t = np.linspace(0, 1, k)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t ** 2 * np.array(p2)
    return [tuple(p) for p in pts]


def _in_eye(ex, ey, ew, eh, r, dy, k=24):
    """Polygon of a disc (centre (ex, ey + dy), radius r) clipped to the eye ellipse (half-axes ew, eh)."""
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    x = ex + r * np.cos(t)
    u = np.clip((x - ex) / ew, -1, 1)
    half = eh * np.sqrt(1 - u ** 2)
    y = np.clip(ey + dy + r * np.sin(t), ey - half, ey + half)
    return list(zip(x, y))


def draw_face(d: ImageDraw.ImageDraw, ident: Identity, e: Expression, cx: float, cy: float, a: float) -> None:
    """Draw one face: half-width a, centre (cx, cy), in supersampled pixel units."""
    b = a * ident.aspect
    skin = ident.skin
    shade = _rgb(np.array(skin) * 0.7)
    # shoulders + neck
    d.ellipse([cx - 2.2 * a, cy + 1.15 * b, cx + 2.2 * a, cy + 3.2 * b], fill=ident.shirt)
    d.rectangle([cx - 0.38 * a, cy + 0.6 * b, cx + 0.38 * a, cy + 1.35 * b], fill=shade)
    if ident.hair_style == 2:  # long hair behind the face
        d.rounded_rectangle([cx - 1.18 * a, cy - 1.12 * b, cx + 1.18 * a, cy + 0.9 * b], radius=a * 0.6, fill=ident.hair)
    d.ellipse([cx - a, cy - b, cx + a, cy + b], fill=skin)
    if ident.hair_style in (0, 2):
        d.chord([cx - 1.04 * a, cy - 1.06 * b, cx + 1.04 * a, cy + 0.2 * b], 180, 360, fill=ident.hair)
    # ears
    for s in (-1, 1):
        d.ellipse([cx + s * a - 0.12 * a, cy - 0.15 * b, cx + s * a + 0.12 * a, cy + 0.15 * b], fill=skin)
    # eyes
    ey = cy - 0.12 * b
    ew = 0.2 * a
    eh = max(0.006 * b, 0.065 * b * e.eye_open)
    socket = _rgb(np.array(skin) * 0.8)
    sclera = _rgb(np.array((225, 215, 205)) * 0.6 + np.array(skin) * 0.4)
    for s in (-1, 1):  # shaded eye sockets: real faces are darker around the eyes (realism.py)
        ex = cx + s * 0.4 * a
        d.ellipse([ex - 1.45 * ew, ey - 0.2 * b, ex + 1.45 * ew, ey + 0.11 * b], fill=socket)
    for s in (-1, 1):
        ex = cx + s * 0.4 * a
        d.ellipse([ex - ew, ey - eh, ex + ew, ey + eh], fill=sclera, outline=shade, width=max(1, int(a * 0.02)))
        # The iris is as tall as a relaxed eye opening and is cut by the lids (white shows above it only when
        # the eyes widen, AU5): with a small iris floating in white every face stared, and the real-face
        # expert called 7 of 12 neutral faces surprised (training/synth/REALISM.md).
        d.polygon(_in_eye(ex, ey, ew, eh, 0.55 * ew, 0.0), fill=ident.iris)
        d.polygon(_in_eye(ex, ey, ew, eh, 0.25 * ew, 0.0), fill=(10, 10, 10))
        if e.eye_open < 0.85:  # lowered upper lid
            d.chord([ex - ew * 1.05, ey - eh * 1.6, ex + ew * 1.05, ey + eh * 0.4], 180, 360, fill=socket)
    # brows: inner end at 0.12a, outer end at 0.62a from the centre line
    by = ey - 0.105 * b - 0.09 * b * e.brow_raise  # real brows sit close above the eyes (realism.py: 0.13 b read as surprise)
    bw = max(2, int(0.075 * b))
    brow_col = _rgb(np.minimum(np.array(ident.hair) * 0.8, np.array(skin) * 0.45))
    line = max(1, int(a * 0.025))
    if e.brow_angle < -0.45:  # vertical glabella lines of knitted brows (AU4)
        for s in (-1, 1):
            d.line([(cx + s * 0.05 * a, by - 0.1 * b), (cx + s * 0.07 * a, by + 0.06 * b)], fill=shade, width=line)
    for s in (-1, 1):
        inner = (cx + s * 0.12 * a, by - 0.09 * b * e.brow_angle)
        outer = (cx + s * 0.62 * a, by + 0.02 * b * e.brow_angle)
        mid = ((inner[0] + outer[0]) / 2, (inner[1] + outer[1]) / 2 - 0.03 * b)
        d.line(_quad(inner, mid, outer, 8), fill=brow_col, width=bw, joint="curve")
    # nose
    d.line([(cx, cy - 0.02 * b), (cx - 0.07 * a, cy + 0.2 * b), (cx + 0.04 * a, cy + 0.22 * b)], fill=shade,
           width=max(1, int(a * 0.03)))
    # mouth: corners move with curvature, lips part with openness
    my = cy + 0.45 * b
    mw = 0.42 * a * e.mouth_width  # real mouths span ~40 % of the face width
    curve = 0.13 * b * e.mouth_curve
    open_ = max(0.0, e.mouth_open)
    u = np.linspace(-1, 1, 17)
    centre = my - curve * u ** 2 + curve * 0.3
    bulge = np.sqrt(np.clip(1 - u ** 2, 0, 1))
    upper = centre - 0.05 * b * open_ * bulge
    lower = centre + 0.24 * b * open_ * bulge
    xs = cx + u * mw
    lip = _rgb(np.array(skin) * np.array([0.62, 0.36, 0.36]))
    if e.mouth_curve > 0.4:  # nasolabial folds and raised cheeks of a smile (AU6+AU12)
        for s in (-1, 1):
            d.line(_quad((cx + s * 0.14 * a, cy + 0.2 * b), (cx + s * 0.38 * a, cy + 0.3 * b),
                         (cx + s * (mw / a + 0.08) * a, my - curve * 0.6), 8), fill=shade, width=line)
    elif e.mouth_curve < -0.5:  # the chin boss and down-turned fold of a sad mouth (AU15+AU17)
        for s in (-1, 1):
            d.line([(cx + s * mw, my - curve * 0.5), (cx + s * (mw + 0.05 * a), my + 0.12 * b)], fill=shade, width=line)
    if open_ > 0.06:
        poly = list(zip(xs, upper)) + list(zip(xs[::-1], lower[::-1]))
        d.polygon(poly, fill=(45, 12, 16), outline=lip)
        if open_ > 0.2 and e.mouth_curve > 0.3:  # teeth in a broad smile, not in the O of surprise
            d.polygon(list(zip(xs[3:-3], upper[3:-3])) + list(zip(xs[-4:2:-1], upper[-4:2:-1] + 0.05 * b * open_)),
                      fill=(235, 235, 225))
        d.line(list(zip(xs, upper)), fill=lip, width=max(2, int(0.03 * b)))
        d.line(list(zip(xs, lower)), fill=lip, width=max(2, int(0.035 * b)))
    else:
        d.line(list(zip(xs, centre)), fill=lip, width=max(2, int(0.04 * b)), joint="curve")


def render_clip(emotion: str | None, n_frames: int, rng: np.random.Generator, size: tuple[int, int] = (224, 224),
                intensity: float = 1.0, talking: np.ndarray | None = None, supersample: int = 2) -> tuple[np.ndarray, dict]:
    """Frames (n, H, W, 3) uint8 of one clip and a dict describing what was drawn.

    emotion=None renders the scene with no face (a 'blank' vision stream). `talking` (n,) in 0..1 adds
    speech-driven mouth opening.
    """
    w, h = size
    W, H = w * supersample, h * supersample
    ident = sample_identity(rng)
    scene = sample_scene(rng)
    bg = render_background(scene, H, W, rng)
    # lighting gain map: directional ramp x brightness x colour cast
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(scene.light_dir) * (xx / w - 0.5) + np.sin(scene.light_dir) * (yy / h - 0.5)) * 2
    gain = (scene.brightness * (1 + scene.light_strength * ramp))[..., None] * np.array(scene.cast, np.float32)
    info: dict = {"identity": asdict(ident), "scene": asdict(scene)}
    track = expression_track(emotion, n_frames, rng, intensity) if emotion is not None else None
    # head motion: slow drift + bob, a few percent of the frame
    amp = rng.uniform(0.005, 0.03, 2)
    freq = rng.uniform(0.3, 1.2, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    blinks = set()
    if track is not None:
        for _ in range(int(rng.integers(0, 3))):
            f0 = int(rng.integers(0, n_frames))
            blinks.update({f0, f0 + 1})
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    for i in range(n_frames):
        img = Image.fromarray(bg)
        if track is not None:
            e = track[i]
            if talking is not None:
                e = replace(e, mouth_open=e.mouth_open + 0.35 * float(talking[i]))
            if i in blinks:
                e = replace(e, eye_open=0.05)
            t = i / 15.0
            cx = (ident.cx + amp[0] * np.sin(2 * np.pi * freq[0] * t + phase[0])) * W
            cy = (ident.cy + amp[1] * np.sin(2 * np.pi * freq[1] * t + phase[1])) * H
            draw_face(ImageDraw.Draw(img), ident, e, cx, cy, ident.scale * W)
        if supersample > 1:
            img = img.reduce(supersample)
        x = np.asarray(img, np.float32) * gain
        x += rng.standard_normal(x.shape, dtype=np.float32) * scene.noise
        frames[i] = np.clip(x, 0, 255).astype(np.uint8)
    if track is not None:
        info["apex"] = apex_expression(track).to_dict()
        info["apex_frame"] = int(np.argmax([sum(abs(a - b) for a, b in zip(astuple_(e), astuple_(NEUTRAL))) for e in track]))
    return frames, info


# The facial cues describe_face can name: region -> key -> (action units, canonical phrase). The keys are
# what the manifest records (meta["cues"]["face"]) and what training/cues.py matches generated text against.
FACE_CUES: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "brows": {
        "lowered": (("AU4",), "the eyebrows are lowered and drawn together (AU4)"),
        "inner_raised_lifted": (("AU1", "AU2"), "the inner corners of the eyebrows are raised and the brows lifted (AU1+AU2)"),
        "inner_raised": (("AU1",), "the inner corners of the eyebrows are pulled up (AU1)"),
        "raised": (("AU1", "AU2"), "the eyebrows are raised high (AU1+AU2)"),
        "rest": ((), "the eyebrows are relaxed"),
    },
    "eyes": {
        "wide": (("AU5",), "the eyes are wide open (AU5)"),
        "cheek_raise": (("AU6",), "the eyes narrow as the cheeks rise (AU6)"),
        "tightened": (("AU7",), "the eyelids are tightened and the eyes narrowed (AU7)"),
        "rest": ((), "the eyes are open normally"),
    },
    "mouth": {
        "jaw_drop": (("AU26",), "the jaw drops and the mouth opens into an O shape (AU26)"),
        "open_smile": (("AU12", "AU25"), "the lip corners are pulled up into a broad, open smile (AU12+AU25)"),
        "smile": (("AU12",), "the lip corners are pulled up into a smile (AU12)"),
        "slight_smile": (("AU12",), "there is a slight smile (AU12)"),
        "corners_down": (("AU15",), "the lip corners are pulled down (AU15)"),
        "stretched": (("AU20",), "the lips are stretched sideways and slightly turned down (AU20)"),
        "pressed_down": (("AU15",), "the mouth is pressed and slightly turned down (AU15)"),
        "rest": ((), "the mouth is relaxed"),
    },
}


def face_cues(apex: dict) -> list[dict]:
    """The cues of the apex frame, one per region (brows, eyes, mouth): {region, key, aus}."""
    curve, open_, width = apex["mouth_curve"], apex["mouth_open"], apex["mouth_width"]
    angle, raise_, eye = apex["brow_angle"], apex["brow_raise"], apex["eye_open"]
    if angle <= -0.35:
        brows = "lowered"
    elif angle >= 0.3 and raise_ >= 0.25:
        brows = "inner_raised_lifted"
    elif angle >= 0.3:
        brows = "inner_raised"
    elif raise_ >= 0.55:
        brows = "raised"
    else:
        brows = "rest"
    if eye >= 1.25:
        eyes = "wide"
    elif eye <= 0.8 and curve >= 0.4:
        eyes = "cheek_raise"
    elif eye <= 0.8:
        eyes = "tightened"
    else:
        eyes = "rest"
    if open_ >= 0.6 and width <= 0.85:
        mouth = "jaw_drop"
    elif curve >= 0.45:
        mouth = "open_smile" if open_ >= 0.2 else "smile"
    elif curve >= 0.2:
        mouth = "slight_smile"
    elif curve <= -0.45:
        mouth = "corners_down"
    elif curve <= -0.2 and width >= 1.08:
        mouth = "stretched"
    elif curve <= -0.2:
        mouth = "pressed_down"
    else:
        mouth = "rest"
    return [{"region": r, "key": k, "aus": list(FACE_CUES[r][k][0])} for r, k in
            (("brows", brows), ("eyes", eyes), ("mouth", mouth))]


def describe_face(apex: dict) -> str:
    """A visual expression description of the apex frame, with the action units it shows."""
    cues = [FACE_CUES[c["region"]][c["key"]][1] for c in face_cues(apex)]
    return "In the video, " + cues[0] + ", " + cues[1] + ", and " + cues[2] + "."
