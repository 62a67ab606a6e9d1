"""Shared fixtures: an isolated, offline environment and the tiny-random model folder.

Every test session builds tiny-random afresh in a temporary cache (a few seconds) and never
touches the network: HF_HUB_OFFLINE is set and HF_HOME points at an empty folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="vidlatent-tests-"))
os.environ["VIDLATENT_CACHE"] = str(_SESSION_HOME / "cache")
os.environ["HF_HOME"] = str(_SESSION_HOME / "hf")
os.environ["HF_HUB_OFFLINE"] = "1"
for _name in ("VIDLATENT_MODEL", "VIDLATENT_DEVICE", "VIDLATENT_DTYPE", "VIDLATENT_OFFLOAD", "VIDLATENT_DEBUG"):
    os.environ.pop(_name, None)


def resized_photo(folder: Path, size: tuple[int, int]) -> str:
    """The shared test image resized to ``size`` (a size the tiny models run in a blink), saved in ``folder``."""
    from PIL import Image

    path = folder / "photo.png"
    Image.open(data_file("test_image.png")).convert("RGB").resize(size, Image.LANCZOS).save(path)
    return str(path)


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"shared test data {path} is not present")
    return path


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny-random diffusers folder, built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path()


@pytest.fixture(scope="session")
def tiny_wan() -> Path:
    """The tiny-random-wan folder (Wan 2.1 image-to-video), built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-wan")


@pytest.fixture(scope="session")
def tiny_wan22() -> Path:
    """The tiny-random-wan22 folder (Wan 2.2 TI2V), built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-wan22")


@pytest.fixture(scope="session")
def tiny_ltx() -> Path:
    """The tiny-random-ltx folder (LTX-Video, LTXConditionPipeline), built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-ltx")


@pytest.fixture(scope="session")
def tiny_wan_vace() -> Path:
    """The tiny-random-wan-vace folder (Wan 2.1 VACE, WanVACEPipeline), built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-wan-vace")


@pytest.fixture(scope="session")
def tiny_skyreels() -> Path:
    """The tiny-random-skyreels-df folder (SkyReels-V2 diffusion forcing), built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-skyreels-df")


@pytest.fixture(scope="session")
def tiny_ltx2() -> Path:
    """The tiny-random-ltx2 folder (LTX-2, LTX2Pipeline: video and sound), built once per session."""
    from vidlatent.tiny import tiny_random_path

    return tiny_random_path("tiny-random-ltx2")


@pytest.fixture(scope="session")
def reference(tiny_model: Path):
    """diffusers' own StableVideoDiffusionPipeline, loaded from the tiny-random folder: the reference
    that model-backed commands are proved against."""
    from diffusers import StableVideoDiffusionPipeline

    pipeline = StableVideoDiffusionPipeline.from_pretrained(tiny_model)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model of the same shapes but other random weights: an incompatible VAE."""
    from vidlatent.families.svd import build_tiny_svd
    from vidlatent.tiny import save_tiny_random

    folder = tmp_path_factory.mktemp("other") / "other-tiny"
    save_tiny_random(folder, build=lambda: build_tiny_svd(seed=1))
    return folder


@pytest.fixture
def vidlatent_cmd() -> list[str]:
    """The command line that runs the installed CLI in a subprocess."""
    return [sys.executable, "-m", "vidlatent"]
