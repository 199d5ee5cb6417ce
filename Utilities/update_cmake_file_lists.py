"""Regenerate the file lists of dlreg/CMakeLists.txt (what gets installed into Slicer).

A file missing from these lists is not installed, so `import dlreg...` fails in
Slicer while every test outside Slicer passes. Run after adding or removing files:

    python Utilities/update_cmake_file_lists.py           # rewrite the lists
    python Utilities/update_cmake_file_lists.py --check   # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
CMAKE_FILE = Path("dlreg") / "CMakeLists.txt"
MODEL_SUFFIXES = (".pt", ".npz", ".json")  # as pyproject.toml's package data
SAMPLE_SUFFIXES = (".nrrd", ".png", ".json", ".md")  # the sample images with their notes
TRAINING = Path("dlreg") / "training"  # installed apart from inference (SlicerDLReg_INSTALL_TRAINING)


def _plain_files(folder: Path) -> list[Path]:
    """Visible regular files directly in `folder` (no sub-folders, no caches)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def _relative(root: Path, paths: list[Path]) -> list[str]:
    names = sorted(p.relative_to(root).as_posix() for p in paths)
    spaced = [n for n in names if re.search(r"\s|;", n)]
    if spaced:
        raise SystemExit(f"file names with spaces or ';' cannot be listed in CMake: {spaced}")
    return names


def _python_files(root: Path) -> list[Path]:
    return [p for p in (root / "dlreg").rglob("*.py") if "__pycache__" not in p.parts]


def scripts(root: Path = ROOT) -> list[str]:
    """The Python files of inference: the dlreg package without dlreg/training."""
    return _relative(root, [p for p in _python_files(root) if (root / TRAINING) not in p.parents])


def training_scripts(root: Path = ROOT) -> list[str]:
    """The Python files of dlreg/training (what the modules' training sections need)."""
    return _relative(root, [p for p in _python_files(root) if (root / TRAINING) in p.parents])


def resources(root: Path = ROOT) -> list[str]:
    """Bundled model files and the sample data with its licence notes."""
    models = [p for p in _plain_files(root / "dlreg" / "models") if p.suffix in MODEL_SUFFIXES]
    samples = [p for p in _plain_files(root / "dlreg" / "sampledata") if p.suffix in SAMPLE_SUFFIXES]
    return _relative(root, models + samples)


def render(text: str, name: str, entries: Sequence[str]) -> str:
    """Replace the lines between `# BEGIN GENERATED <name>` and `# END GENERATED <name>`."""
    pattern = re.compile(rf"^([ \t]*)# BEGIN GENERATED {name}\n.*?^[ \t]*# END GENERATED {name}\n", re.M | re.S)
    match = pattern.search(text)
    if match is None:
        raise SystemExit(f"{CMAKE_FILE}: the markers '# BEGIN/END GENERATED {name}' are missing")
    indent = match.group(1)
    lines = [f"# BEGIN GENERATED {name}", *entries, f"# END GENERATED {name}"]
    return text[:match.start()] + "".join(f"{indent}{line}\n" for line in lines) + text[match.end():]


def generate(root: Path = ROOT) -> str:
    """The CMakeLists text with every list brought up to date with the files on disk."""
    text = (root / CMAKE_FILE).read_text(encoding="utf-8")
    text = render(text, "SCRIPTS", scripts(root))
    text = render(text, "TRAINING SCRIPTS", training_scripts(root))
    return render(text, "RESOURCES", resources(root))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the lists are stale")
    args = parser.parse_args(argv)
    path = ROOT / CMAKE_FILE
    current, updated = path.read_text(encoding="utf-8"), generate()
    if args.check:
        if updated != current:
            print(f"{CMAKE_FILE} is stale: run python Utilities/update_cmake_file_lists.py", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        path.write_text(updated, encoding="utf-8")
        print(f"updated {CMAKE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
