"""Tiny random models: miniature pipelines of each family, made of the real classes.

``tiny-random`` is Stable Video Diffusion (built here); each family names its own
(``tiny-random-wan``, ...) and builds them (``Family.build_tiny``). Every one is built once,
deterministically, saved as an ordinary diffusers folder under the cache and loaded back through
the same code path as any user's model.

For ``tiny-random``, every component is the class a real SVD checkpoint uses (UNetSpatioTemporalConditionModel,
AutoencoderKLTemporalDecoder with a real 8x downsampling, CLIPVisionModelWithProjection,
CLIPImageProcessor and an EulerDiscreteScheduler configured as SVD's), only with tiny sizes and
random weights drawn under a fixed seed. It is built once, saved as an ordinary diffusers folder
and loaded back through the same code path as any user's model, so every command runs offline,
on a CPU, in seconds. Its output is noise by design: it proves the plumbing, not the pictures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidlatent.atomic import atomic_output

NAME = "tiny-random"
# Bump when a tiny model's configs change, so an old cached folder is not reused.
VERSIONS = {"tiny-random": 1, "tiny-random-wan": 1, "tiny-random-wan22": 1, "tiny-random-ltx": 1,
            "tiny-random-ltx-upscaler": 1}
SEED = 0
# The scheduler SVD ships with (stabilityai/stable-video-diffusion-img2vid-xt, scheduler_config.json).
SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}


def cache_root() -> Path:
    """Folder where vidlatent keeps what it builds: $VIDLATENT_CACHE, else $XDG_CACHE_HOME/vidlatent."""
    if os.environ.get("VIDLATENT_CACHE"):
        return Path(os.environ["VIDLATENT_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "vidlatent"


def tiny_random_path(name: str = NAME, build: Callable[[], Any] | None = None) -> Path:
    """Return the folder of the tiny random model ``name``, building it on first use.

    ``build`` makes it, for tiny pipelines that are not a family's models (LTX's tiny upscaler);
    default: the family's ``build_tiny``.
    """
    folder = cache_root() / f"{name}-v{VERSIONS.get(name, 1)}"
    if not (folder / "model_index.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        save_tiny_random(folder, name, build)
    return folder


def save_tiny_random(folder: str | os.PathLike[str], name: str = NAME, build: Callable[[], Any] | None = None) -> None:
    """Build the tiny model ``name`` deterministically and save it as a diffusers folder (atomically)."""
    from vidlatent import families
    from vidlatent.models import _quiet_libraries

    _quiet_libraries()
    pipeline = build() if build is not None else families.tiny_models()[name].build_tiny(name)
    with atomic_output(folder, directory=True) as temporary:
        pipeline.save_pretrained(temporary, safe_serialization=True)


def build_tiny_random():  # -> StableVideoDiffusionPipeline
    """The tiny pipeline in memory: real classes, tiny configs, weights drawn under SEED."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(SEED)
    unet = UNetSpatioTemporalConditionModel(
        # sample_size * 8 = 64: the native area of this model is 64x64 pixels.
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,  # 3 added time ids x addition_time_embed_dim
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
        num_frames=14,
    )
    torch.manual_seed(SEED)
    vae = AutoencoderKLTemporalDecoder(
        # Four blocks, so the latents are 1/8 of the pixels as in SVD's VAE.
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    )
    torch.manual_seed(SEED)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            # The pipeline resizes the conditioning image to 224x224 for CLIP.
            image_size=224,
            patch_size=32,
        )
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    scheduler = EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=feature_extractor,
    )
