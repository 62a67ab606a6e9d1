"""Tiny random models: miniature pipelines of each family, made of the real classes, built once.

Each family names its tiny models (``Family.tiny``: ``tiny-random`` for Stable Video Diffusion,
``tiny-random-wan``, ``tiny-random-ltx``, ...) and builds them (``Family.build_tiny``); a family's
latent upsampler may have its own (``tiny-random-ltx-upscaler``). Every one is built
deterministically on first use, saved as an ordinary diffusers folder under the cache and loaded
back through the same code path as any user's model, so every command runs offline, on a CPU, in
seconds. Their output is noise by design: they prove the plumbing, not the pictures.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidlatent import families
from vidlatent.atomic import atomic_output


def cache_root() -> Path:
    """Folder where vidlatent keeps what it builds: $VIDLATENT_CACHE, else $XDG_CACHE_HOME/vidlatent."""
    if os.environ.get("VIDLATENT_CACHE"):
        return Path(os.environ["VIDLATENT_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "vidlatent"


def tiny_random_path(name: str = "tiny-random") -> Path:
    """Return the folder of the tiny random model ``name``, building it on first use (the folder's
    name carries the version its family declares, so a changed builder is not served stale)."""
    version, _ = families.tiny_builders()[name]
    folder = cache_root() / f"{name}-v{version}"
    if not (folder / "model_index.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        save_tiny_random(folder, name)
    return folder


def save_tiny_random(folder: str | os.PathLike[str], name: str = "tiny-random", build: Callable[[], Any] | None = None) -> None:
    """Build the tiny model ``name`` deterministically (or with ``build``) and save it as a diffusers folder (atomically)."""
    quiet_libraries()
    pipeline = build() if build is not None else families.tiny_builders()[name][1]()
    with atomic_output(folder, directory=True) as temporary:
        pipeline.save_pretrained(temporary, safe_serialization=True)


@functools.cache
def quiet_libraries() -> None:
    """Silence diffusers' and transformers' own logging and progress bars: stdout may carry latent
    bytes and stderr belongs to vidlatent's own progress (once per process: every load calls it)."""
    import diffusers.utils.logging as diffusers_logging

    # Errors too: diffusers logs failures it then raises, and those become our one-line errors.
    diffusers_logging.set_verbosity(diffusers_logging.CRITICAL)
    diffusers_logging.disable_progress_bar()
    try:
        import transformers.utils.logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
