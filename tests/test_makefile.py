"""examples/Makefile: a generate -> extend -> interpolate -> decode chain that make rebuilds exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import imageio_ffmpeg
import pytest
from PIL import Image

from tests.conftest import ROOT, data_file

TARGETS = ("clip.safetensors", "long.safetensors", "smooth.safetensors", "long.mp4")


@pytest.fixture
def workdir(tmp_path, tiny_model):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "examples" / "Makefile", tmp_path / "Makefile")
    Image.open(data_file("test_image.png")).convert("RGB").resize((128, 64)).save(tmp_path / "photo.png")
    return tmp_path


def make(workdir, *args: str) -> subprocess.CompletedProcess:
    command = ["make", f"VIDLATENT={sys.executable} -m vidlatent", "MODEL=tiny-random", "STEPS=2", "TIMES=1", "PHOTO=photo.png",
               *args]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True)


def mtimes(workdir) -> dict[str, int]:
    return {name: (workdir / name).stat().st_mtime_ns for name in TARGETS}


def test_chain_builds_then_does_nothing_then_rebuilds_after_touch(workdir):
    first = make(workdir)
    assert first.returncode == 0, first.stderr
    # 14 generated frames, 1 segment of 14 - 2 overlapping, then --factor 2: 2 * 26 - 1.
    assert imageio_ffmpeg.count_frames_and_secs(str(workdir / "long.mp4"))[0] == 2 * (14 + 12) - 1
    built = mtimes(workdir)

    second = make(workdir)
    assert second.returncode == 0 and "vidlatent" not in second.stdout, second.stdout
    assert mtimes(workdir) == built
    assert make(workdir, "-q").returncode == 0  # make agrees everything is up to date

    time.sleep(0.01)
    later = time.time() + 2
    os.utime(workdir / "photo.png", (later, later))
    third = make(workdir)
    assert third.returncode == 0, third.stderr
    rebuilt = mtimes(workdir)
    assert all(rebuilt[name] > built[name] for name in TARGETS), (built, rebuilt)


def test_a_failing_step_leaves_no_output_behind(workdir):
    result = make(workdir, "STEPS=0")  # generate refuses --steps 0
    assert result.returncode != 0
    assert "--steps 0" in result.stderr
    assert not any((workdir / name).exists() for name in TARGETS)
    assert sorted(p.name for p in workdir.iterdir()) == ["Makefile", "photo.png"]


def test_a_failure_midway_keeps_the_finished_steps_and_resumes(workdir):
    failed = make(workdir, "FACTOR=0")  # interpolate refuses --factor 0
    assert failed.returncode != 0
    assert (workdir / "clip.safetensors").exists() and (workdir / "long.safetensors").exists()
    assert not (workdir / "smooth.safetensors").exists() and not (workdir / "long.mp4").exists()
    assert not [p.name for p in workdir.iterdir() if p.name.startswith(".")]  # no temporary files left
    before = mtimes_of(workdir, ("clip.safetensors", "long.safetensors"))
    resumed = make(workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "generate" not in resumed.stdout and "extend" not in resumed.stdout
    assert mtimes_of(workdir, ("clip.safetensors", "long.safetensors")) == before
    assert (workdir / "long.mp4").exists()


def test_the_documented_line_finds_its_default_input(tmp_path):
    """`cd examples && make MODEL=tiny-random STEPS=4`, as README.md says, with no PHOTO=: the input
    is the shared test image beside the project (make -n: the commands it would run, none run)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    data_file("test_image.png")
    examples = tmp_path / "project" / "examples"
    examples.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "Makefile", examples / "Makefile")
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")  # the shared folder beside the project
    result = subprocess.run(["make", "-n", "MODEL=tiny-random", "STEPS=4"], cwd=examples, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "generate ../../shared/data/test_image.png --model tiny-random" in result.stdout
    assert "--steps 4" in result.stdout and "decode smooth.safetensors" in result.stdout


def mtimes_of(workdir, names) -> dict[str, int]:
    return {name: (workdir / name).stat().st_mtime_ns for name in names}
