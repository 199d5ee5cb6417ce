"""The wheel: built from this tree, installed into a fresh virtual environment, it runs the demo.

The wheel must carry everything `python -m dlreg demo` needs (the bundled models and sample
data) and declare the dependencies. Installing those dependencies again would take minutes
and the network, so the fresh environment reads the third-party packages of the test's own
environment through a path entry (not a site directory: the editable install of this tree
stays invisible), and dlreg comes only from the wheel.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the package sources (a build leaves build/ where it runs)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "dlreg", source / "dlreg", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, cwd=out)
    (found,) = out.glob("dlreg-*.whl")
    return found


def test_wheel_holds_models_sample_data_and_training(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("dlreg/sampledata/mni_t1_2mm.nrrd", "dlreg/sampledata/stroke_t2_2mm.nrrd",
                     "dlreg/sampledata/LICENSES.md", "dlreg/models/rigid3d_keypoints.pt",
                     "dlreg/models/modality_dcnn.json", "dlreg/training/cli.py"):
        assert required in names, required
    assert not any(name.startswith(("Testing/", "benchmarks/", "Utilities/")) for name in names)


def test_wheel_declares_its_dependencies(wheel):
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(archive.read(meta_name).decode())
    requires = meta.get_all("Requires-Dist")
    plain = {r.split(">")[0].split("=")[0].strip().lower() for r in requires if "extra ==" not in r}
    assert {"numpy", "simpleitk", "torch", "scikit-image"} <= plain
    assert any(r.startswith("slicer-core") and 'extra == "mrml"' in r for r in requires)
    assert "slicer-core" not in plain  # never pulled into Slicer's own Python


def test_demo_runs_from_the_wheel_in_a_fresh_environment(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "third_party.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run([str(python), "-c", "import dlreg; print(dlreg.__file__)"], capture_output=True,
                           text=True, check=True, cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(env_dir), where
    done = subprocess.run([str(python), "-m", "dlreg", "demo", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["zeroshot"]["passed"] and summary["identity_check"]["passed"]
    assert (tmp_path / "out" / "zeroshot_before_after_uncertainty.png").stat().st_size > 1000
