"""`python -m dlreg`: help for every command, info, demo, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dlreg.cli import build_parser, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlreg", *args], capture_output=True, text=True, timeout=300)


def command_names() -> list[str]:
    parser = build_parser()
    return sorted(parser._subparsers._group_actions[0].choices)


def test_every_command_has_help():
    names = command_names()
    assert {"info", "demo"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0


def test_top_level_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in command_names():
        assert name in result.stdout


def test_info_reports_versions_device_and_verified_models():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["versions"]["SimpleITK"] and info["versions"]["torch"]
    assert info["device"]["auto"] in ("cpu", "cuda", "mps")
    assert info["models"], "the bundled models should be listed"
    assert all(model["verified"] and len(model["sha256"]) == 64 for model in info["models"])


def test_demo_writes_its_picture(tmp_path):
    result = run_cli("demo", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["identity_check"]["passed"] and summary["zeroshot"]["passed"]
    assert summary["zeroshot"]["median_error_mm"] < 2.0  # one voxel of the 2 mm sample data
    picture = tmp_path / "out" / "zeroshot_before_after_uncertainty.png"
    assert picture.is_file() and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_errors_are_one_line(tmp_path):
    result = run_cli("demo", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: sample data file") and "Traceback" not in result.stderr


def test_unknown_device_is_a_clear_error():
    from dlreg.device import resolve_device
    from dlreg.errors import DLRegError

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(DLRegError, match="unknown device"):
        resolve_device("tpu")
