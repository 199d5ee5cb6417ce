"""Write docs/bad_inputs.md: what a user sees for each kind of bad input, run for real.

Every row makes its input in a temporary folder from the bundled samples, runs the command as
`python -m dlreg ...` in a child process and records the exit status, the first line on stderr
and, for runs that finish, whether the result says "likely failed". Nothing in the table is
written by hand: re-run this script after a change to the checks.

    .venv/bin/python Utilities/bad_input_table.py [--output docs/bad_inputs.md]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.io import read_image
from dlreg.sampledata import sample_path

ROOT = Path(__file__).resolve().parents[1]
T1 = sample_path("stroke_t1_2mm.nrrd")
T2 = sample_path("stroke_t2_2mm.nrrd")
PNG1, PNG2 = sample_path("stroke_t1_axial.png"), sample_path("stroke_t2_axial.png")


def _write(folder: Path, name: str, array: np.ndarray, like: Path | None = T1) -> Path:
    image = sitk.GetImageFromArray(array)
    if like is not None and image.GetDimension() == 3:
        image.CopyInformation(read_image(like))
    path = folder / name
    sitk.WriteImage(image, str(path))
    return path


def _cut(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def cases(folder: Path) -> list[tuple[str, Callable[[], list[str]]]]:
    """(input class, a function making the inputs and returning the command's arguments)."""
    t1 = read_image(T1)
    shape = sitk.GetArrayViewFromImage(t1).shape
    rng = np.random.default_rng(0)
    out = ["--output-transform", str(folder / "out" / "t.tfm")]

    def corrupt() -> Path:
        path = folder / "corrupt.nii.gz"
        path.write_bytes(gzip.compress(rng.bytes(5000)))
        return path

    def raw(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    def four_d() -> Path:
        sitk.WriteImage(sitk.JoinSeries([t1, t1]), str(folder / "four.nii.gz"))
        return folder / "four.nii.gz"

    def degenerate() -> Path:
        cube = folder / "cube.nrrd"
        sitk.WriteImage(sitk.GetImageFromArray(rng.random((20, 20, 20)).astype(np.float32)), str(cube))
        return raw("degenerate.nrrd", cube.read_bytes().replace(b"(0,1,0)", b"(1,0,0)", 1))

    def saved(name: str) -> Path:
        sitk.WriteImage(t1, str(folder / name))
        return folder / name

    return [
        ("missing file", lambda: ["register3d", str(T1), str(folder / "nope.nii.gz"), *out]),
        ("empty file", lambda: ["classify", str(raw("empty.nii.gz", b""))]),
        ("not an image (random bytes)", lambda: ["register3d", str(T1), str(corrupt()), *out]),
        ("truncated .nii (half its bytes)", lambda: ["register3d", str(T1), str(_cut(saved("half.nii"))), *out]),
        ("truncated .nii.gz (half its bytes)", lambda: ["classify", str(_cut(saved("half.nii.gz")))]),
        ("4D series", lambda: ["classify", str(four_d())]),
        ("colour vector volume", lambda: ["classify", str(_write(folder, "rgb.nrrd", rng.random(
            (*shape, 3)).astype(np.float32), None))]),
        ("NaN voxels", lambda: ["register3d", str(T1), str(_write(folder, "nan.nrrd", np.where(
            sitk.GetArrayFromImage(t1) > 50, np.nan, 1.0).astype(np.float32))), *out]),
        ("blank (constant) volume", lambda: ["register3d", str(T1), str(_write(
            folder, "blank.nrrd", np.ones(shape, np.float32))), *out]),
        ("values beyond float32 (1e300)", lambda: ["classify", str(_write(folder, "huge.nrrd",
                                                                           np.full(shape, 1e300)))]),
        ("degenerate direction in the header", lambda: ["classify", str(degenerate())]),
        ("2D picture where 3D is needed", lambda: ["register3d", str(PNG1), str(PNG2), *out]),
        ("a 2D image against a 3D volume", lambda: ["register2d", str(T1), str(PNG2), "--slice", "30", *out]),
        ("3D volume without --slice in register2d", lambda: ["register2d", str(T1), str(T2), *out]),
        ("slice index outside the volume", lambda: ["register2d", str(T1), str(T2), "--slice", "900", *out]),
        ("2D pictures of different sizes", lambda: ["register2d", str(PNG1), str(_write(
            folder, "small.png", (rng.random((40, 50)) * 255).astype(np.uint8), None)), *out]),
        ("slice registered to uniform noise", lambda: ["register2d", str(PNG1), str(_write(
            folder, "noise.png", (rng.random((160, 124)) * 255).astype(np.uint8), None)), *out, "--json"]),
        ("negative seed", lambda: ["register2d", str(PNG1), str(PNG2), "--seed", "-1", *out]),
        ("uncertainty runs beyond the bound", lambda: ["register3d", str(T1), str(T2), "--n-uncertainty", "2000",
                                                       *out]),
        ("bootstrap sets beyond the bound", lambda: ["register2d", str(PNG1), str(PNG2), "--n-bootstrap",
                                                     "100000", *out]),
        ("unknown mode", lambda: ["register2d", str(PNG1), str(PNG2), "--mode", "fast", *out]),
        ("VGG weights in default mode", lambda: ["register2d", str(PNG1), str(PNG2), "--vgg-weights",
                                                 str(folder / "vgg.pth"), *out]),
        ("a device that is absent", lambda: ["register2d", str(PNG1), str(PNG2), "--device", "cuda", *out]),
        ("missing weights file", lambda: ["register3d", str(T1), str(T2), "--weights", str(folder / "w.pt"), *out]),
        ("weights file of random bytes", lambda: ["classify", str(T1), "--weights",
                                                  str(raw("garbage.pt", rng.bytes(3000)))]),
        ("weights of another model", lambda: ["register3d", str(T1), str(T2), "--estimator", "ann", "--weights",
                                              str(ROOT / "dlreg" / "models" / "rigid3d_keypoints.pt"), *out]),
        ("output folder is a file", lambda: ["register3d", str(T1), str(T2), "--output-transform",
                                             str(raw("a-file", b"x") / "t.tfm")]),
        ("output image is an input", lambda: ["register3d", str(T1), str(T2), *out, "--output-image", str(T2)]),
        ("unreadable --dicom-metadata", lambda: ["classify", str(T1), "--dicom-metadata", str(folder / "m.json")]),
    ]


def run(arguments: list[str], folder: Path) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "dlreg", *arguments], capture_output=True, text=True, cwd=folder,
                          timeout=600)
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("{")]
    flag = ""
    if done.returncode == 0 and done.stdout.strip().startswith("{"):
        payload = json.loads(done.stdout)
        flag = "likely failed: " + "; ".join(payload.get("failure_reasons", [])) if payload.get("likely_failed") \
            else "not flagged"
    return done.returncode, lines[0] if lines else "", flag


def table(rows: list[tuple[str, list[str], int, str, str]], folder: Path) -> str:
    def clean(text: str) -> str:
        return text.replace(str(folder), "TMP").replace(str(ROOT), ".").replace("|", "\\|")

    out = ["| input | command | exit | what the user sees |", "|---|---|---|---|"]
    for name, arguments, code, message, flag in rows:
        shown = "; ".join(s for s in (message, flag) if s) or "(nothing)"
        out.append(f"| {name} | `python -m dlreg {clean(' '.join(arguments))}` | {code} | {clean(shown)} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "bad_inputs.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = []
        for name, make in cases(folder):
            arguments = make()
            code, message, flag = run(arguments, folder)
            rows.append((name, arguments, code, message, flag))
            print(f"{code} {name}: {message or flag}", file=sys.stderr)
        text = table(rows, folder)
    args.output.write_text(
        "# What a user sees for bad inputs\n\nGenerated by `python Utilities/bad_input_table.py` (do not edit by "
        "hand): each input is made from the bundled samples and run through `python -m dlreg` in a child process. "
        "Exit status 2: a user error, one line on stderr; 0: the run finished (the JSON result says whether it is "
        "likely failed); 1: an unexpected failure (a bug to report).\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
