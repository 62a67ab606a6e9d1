"""Wan 2.1 and 2.2: text and image to video with a causal 3D VAE and a flow-matching transformer.

diffusers' ``WanImageToVideoPipeline`` (an image, a prompt, optionally a last frame) and
``WanPipeline`` (a prompt; Wan 2.2 TI2V's folder loads as either), a ``WanTransformer3DModel``
(two of them on Wan 2.2's A14B models: a high-noise and a low-noise expert, switched at
``boundary_ratio``), UniPC flow-matching sampling, a UMT5 text encoder and ``AutoencoderKLWan``:
a causal VAE that makes one latent frame of the first pixel frame and one of every 4 after it
((T - 1) * 4 + 1 pixel frames), at 1/8 of the size (Wan 2.2 TI2V: 1/16, 48 channels), its
latents normalised per channel by the VAE's ``latents_mean``/``latents_std``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.families.base import (
    IMAGE_NONE, IMAGE_OPTIONAL, IMAGE_REQUIRED, ComfyAssumption, DecodeSettings, DecodeWork, Family, ModelSpec, Workload,
    onload, patch_workload, read_config,
)
from vidlatent.errors import UsageError
from vidlatent.layout import FrameRule, LatentLayout, Normalization
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

I2V = "WanImageToVideoPipeline"
T2V = "WanPipeline"
TEMPORAL = 4
DEFAULT_FRAMES = 81  # the pipelines' num_frames default
ROPE_MAX_SEQ_LEN = 1024  # WanTransformer3DModel's rope_max_seq_len default (diffusers)
# Tensors of a decoder step's full-resolution size alive at its peak (decode_working_bytes): a
# rough, conservative figure, to be calibrated against measured peaks on a GPU.
DECODE_LIVE = 8
# The keys of the transformer's cross-attention (vidlatent.planning): the pipelines' prompt length
# (max_sequence_length 512) and, on image-to-video models, CLIP ViT-H/14's 257 image tokens.
TEXT_TOKENS = 512
IMAGE_TOKENS = 257
# diffusers' AutoencoderKLWan defaults (Wan 2.1's VAE) and Wan 2.2's 48-channel VAE (as in
# ComfyUI's Wan22 latent format): used for ComfyUI latents, which do not carry them.
WAN21_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
              0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
             3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
WAN22_MEAN = (-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
              0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
              -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
              -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667)
WAN22_STD = (0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
             0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
             0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
             0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744)


@dataclass(frozen=True)
class Checkpoint:
    """What a Wan checkpoint is, as its folder's configs say: for checks before it is downloaded,
    and for the native size and frame rate, which the configs do not carry (model cards)."""

    alias: str
    hub: str
    native_size: tuple[int, int]
    fps: float
    image: str  # required, optional or none
    last_image: bool = False
    experts: int = 1
    z_dim: int = 16


# The diffusers-format checkpoints. 81 frames (Wan 2.2 TI2V: 121) is what they were trained on;
# the pipelines' own default (81) is what --frames defaults to.
CHECKPOINTS = (
    Checkpoint("wan21-i2v-480p", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", (832, 480), 16.0, IMAGE_REQUIRED),
    Checkpoint("wan21-i2v-720p", "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers", (1280, 720), 16.0, IMAGE_REQUIRED),
    Checkpoint("wan21-flf2v", "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", (1280, 720), 16.0, IMAGE_REQUIRED, last_image=True),
    Checkpoint("wan22-ti2v-5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", (1280, 704), 24.0, IMAGE_OPTIONAL, z_dim=48),
    Checkpoint("wan22-i2v-a14b", "Wan-AI/Wan2.2-I2V-A14B-Diffusers", (1280, 720), 16.0, IMAGE_REQUIRED, experts=2),
    Checkpoint("wan22-t2v-a14b", "Wan-AI/Wan2.2-T2V-A14B-Diffusers", (1280, 720), 16.0, IMAGE_NONE, experts=2),
)
# The tiny random models (build_tiny_wan): Wan 2.1 image-to-video, first-last-frame-to-video
# (FLF2V: the image embedding takes both frames' CLIP tokens, pos_embed_seq_len), and Wan 2.2 TI2V.
TINY_CHECKPOINTS = (
    Checkpoint("tiny-random-wan", "tiny-random-wan", (64, 64), 16.0, IMAGE_REQUIRED),
    Checkpoint("tiny-random-wan-flf2v", "tiny-random-wan-flf2v", (64, 64), 16.0, IMAGE_REQUIRED, last_image=True),
    Checkpoint("tiny-random-wan22", "tiny-random-wan22", (64, 64), 24.0, IMAGE_OPTIONAL, z_dim=48),
)
TINY_ROPE_MAX_SEQ_LEN = 32  # the tiny transformers' rotary table
TINY_CLIP_TOKENS = 17  # the tiny CLIP image encoder's hidden states: (32 / 8)^2 patches + the class token
KNOWN = {checkpoint.hub: (checkpoint.native_size, checkpoint.fps) for checkpoint in CHECKPOINTS + TINY_CHECKPOINTS}
# MagCache's magnitude ratios (--cache mag): the mean ratio of the norms of consecutive steps'
# residuals (the blocks' output minus their input), one per step of a 40-step run, as published by
# MagCache's authors for the original Wan 2.1 I2V 14B checkpoints (github.com/Zehong-Ma/MagCache,
# MagCache4Wan2.1/magcache_generate.py, commit 1a66b6d): that file lists the conditional and the
# unconditional call of each step in turn, and these are the conditional ones (diffusers'
# MagCacheConfig takes one sequence for both; the two differ in the third decimal). diffusers
# interpolates them (nearest) to the steps of a run.
MAG_RATIOS = {
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": (
        1.0, 0.98783, 0.97559, 0.98311, 0.98202, 0.9888, 0.98762, 0.98957, 0.99052, 0.99383, 0.98857, 0.99065, 0.98845,
        0.99057, 0.98957, 0.98601, 0.98823, 0.98756, 0.98808, 0.98721, 0.98571, 0.98543, 0.98157, 0.98411, 0.97952,
        0.98149, 0.9774, 0.97825, 0.97355, 0.97085, 0.97056, 0.96588, 0.96113, 0.9567, 0.94961, 0.93973, 0.93217,
        0.91878, 0.90955, 0.92617),
    "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": (
        1.0, 0.99428, 0.98588, 0.98273, 0.99018, 0.98911, 0.98646, 0.99454, 0.9891, 0.99124, 0.99102, 0.99215, 0.99515,
        0.99576, 0.99068, 0.99097, 0.99166, 0.99041, 0.99201, 0.99101, 0.98599, 0.98845, 0.98848, 0.98862, 0.98718,
        0.98497, 0.98264, 0.98389, 0.97938, 0.97535, 0.97498, 0.973, 0.96827, 0.96261, 0.95335, 0.94649, 0.93397,
        0.91636, 0.89088, 0.8679),
}
SEED = 0


def _comfyui(channels: int, spatial: int, mean: tuple[float, ...], std: tuple[float, ...], model: str, fps: float,
             version: str) -> ComfyAssumption:
    layout = LatentLayout(family="wan", spatial=spatial, frame_rule=FrameRule(TEMPORAL, causal=True),
                          normalization=Normalization(factor=1.0, mean=mean, std=std))
    return ComfyAssumption(layout=layout, latent_space=f"AutoencoderKLWan/c{channels}/s1/fp:", model=model, fps=fps,
                           description=f"Wan {version} latents (Wan {version}'s VAE, {channels} channels)")


class Wan(Family):
    name = "wan"
    title = "Wan"
    short_title = "Wan"
    pipeline_classes = (I2V, T2V)
    vae_class = "AutoencoderKLWan"
    components = ("vae", "text_encoder", "tokenizer", "transformer", "transformer_2", "scheduler", "image_encoder",
                  "image_processor")
    aliases = {checkpoint.alias: checkpoint.hub for checkpoint in CHECKPOINTS}
    tiny = {checkpoint.alias: 1 for checkpoint in TINY_CHECKPOINTS}
    knob_arguments = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "guidance": "guidance_scale",
        "guidance_2": "guidance_scale_2",
    }
    pipeline_defaults = {"frames": DEFAULT_FRAMES, "steps": 50, "prompt": None, "negative_prompt": None, "guidance": 5.0,
                         "guidance_2": None}
    default_notes = {"frames": f"which makes {FrameRule(TEMPORAL, causal=True).describe()}", "guidance_2": "as --guidance",
                     "sampler": "the model's own scheduler (UniPC)", "shift": "the model's own flow_shift"}
    scheduler_knobs = ("sampler", "shift")  # UniPC flow-matching: vidlatent.samplers
    preferred_gpu_dtype = "bf16"  # Wan is trained and released in bf16; fp16 risks overflow
    # The pipelines need a prompt; without --prompt vidlatent passes the empty one.
    knob_defaults = {"prompt": ""}
    supports_cache = True  # WanTransformer3DModel is a CacheMixin
    compile_target = "repeated-blocks"  # its _repeated_blocks: WanTransformerBlock
    # WanLoraLoaderMixin, into either expert (load_into_transformer_2); its lora_state_dict converts
    # the original layout (lightx2v, Lightning, CausVid, ComfyUI's) and musubi's (Kohya's naming).
    lora_layouts = ("diffusers", "peft", "original", "kohya")
    attention_dispatch = True  # WanAttnProcessor calls dispatch_attention_fn
    taylorseer_modules = (r"blocks\.\d+\.(attn1|attn2|ffn)",)  # each block's attention and feed-forward outputs
    single_file_components = ("transformer", "transformer_2")  # WanTransformer3DModel.from_single_file
    vae_tiling = True  # AutoencoderKLWan's tiled decode, streamed by decode
    default_decode_chunk_words = "1, its decoder's own step, whatever is given"
    guidance_knob = "guidance"
    guidance_batched = False  # the pipelines call the transformer once with the prompt, once with the negative one
    comfyui = {
        (5, 16): _comfyui(16, 8, WAN21_MEAN, WAN21_STD, "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", 16.0, "2.1"),
        (5, 48): _comfyui(48, 16, WAN22_MEAN, WAN22_STD, "Wan-AI/Wan2.2-TI2V-5B-Diffusers", 24.0, "2.2"),
    }

    # --- configs -------------------------------------------------------------------------------

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        vae = read_config(folder, "vae")
        transformer = read_config(folder, "transformer") or read_config(folder, "transformer_2")
        z_dim = int(vae.get("z_dim", 16))
        if model_index.get("_class_name") == I2V:
            image = IMAGE_REQUIRED
        else:
            image = IMAGE_OPTIONAL if model_index.get("expand_timesteps") else IMAGE_NONE
        default = ((1280, 704), 24.0) if z_dim == 48 else ((832, 480), 16.0)
        native_size, fps = KNOWN.get(model_id, default)
        return self._spec(
            native_size=native_size, fps=fps, image=image, z_dim=z_dim,
            last_image=image == IMAGE_REQUIRED and transformer.get("pos_embed_seq_len") is not None,
            experts=2 if model_index.get("boundary_ratio") is not None else 1,
            size_multiple=int(vae.get("scale_factor_spatial") or 8) * int((transformer.get("patch_size") or [1, 2, 2])[1]),
            temporal=int(vae.get("scale_factor_temporal") or TEMPORAL),
            positions=int(transformer.get("rope_max_seq_len") or ROPE_MAX_SEQ_LEN),
            patch_frames=int((transformer.get("patch_size") or [1, 2, 2])[0]),
        )

    def mag_ratios(self, model_id: str) -> tuple[float, ...] | None:
        return MAG_RATIOS.get(model_id)

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        for checkpoint in CHECKPOINTS:
            if checkpoint.hub == hub_id:
                return self._checkpoint_spec(checkpoint, positions=ROPE_MAX_SEQ_LEN)
        return None

    def tiny_spec(self, name: str) -> ModelSpec:
        checkpoint = next(checkpoint for checkpoint in TINY_CHECKPOINTS if checkpoint.alias == name)
        return self._checkpoint_spec(checkpoint, positions=TINY_ROPE_MAX_SEQ_LEN)

    def _checkpoint_spec(self, checkpoint: Checkpoint, *, positions: int) -> ModelSpec:
        return self._spec(native_size=checkpoint.native_size, fps=checkpoint.fps, image=checkpoint.image,
                          z_dim=checkpoint.z_dim, last_image=checkpoint.last_image, experts=checkpoint.experts,
                          size_multiple=32 if checkpoint.z_dim == 48 else 16, temporal=TEMPORAL, positions=positions,
                          patch_frames=1)

    def _spec(self, *, native_size: tuple[int, int], fps: float, image: str, z_dim: int, last_image: bool, experts: int,
              size_multiple: int, temporal: int, positions: int, patch_frames: int) -> ModelSpec:
        # The transformer's rotary embedding encodes `positions` patches along each axis (frames,
        # height, width): a longer side or clip fails deep inside it, so it is the spec's bound.
        rule = FrameRule(temporal, causal=True)
        knobs = (set(self.knob_arguments) | set(self.scheduler_knobs)) - ({"guidance_2"} if experts == 1 else set())
        version = "2.2" if z_dim == 48 or experts == 2 else "2.1"
        task = {IMAGE_REQUIRED: "first-last-frame" if last_image else "image", IMAGE_OPTIONAL: "text/image",
                IMAGE_NONE: "text"}[image]
        return ModelSpec(
            family=self.name, title=f"Wan {version} {task}-to-video", native_size=native_size, size_multiple=size_multiple,
            frame_rule=rule, fps=fps, image=image, last_image=last_image,
            knobs=frozenset(knobs), frames=DEFAULT_FRAMES, experts=experts,
            max_side=positions * size_multiple, max_frames=rule.pixel_frames(positions * patch_frames),
        )

    def pipeline_class(self, spec: ModelSpec, *, image: bool, last_image: bool = False) -> str:
        return I2V if image and spec.image != IMAGE_NONE else T2V  # a text-only model has no image pipeline

    def sampling_components(self, spec: ModelSpec, *, image: bool) -> tuple[str, ...]:
        if image and spec.image != IMAGE_NONE:
            return self.components
        return tuple(name for name in self.components if name not in ("image_encoder", "image_processor"))

    # --- latents -------------------------------------------------------------------------------

    def layout(self, vae: Any) -> LatentLayout:
        config = vae.config
        return LatentLayout(
            family=self.name, spatial=int(config.scale_factor_spatial), frame_rule=FrameRule(int(config.scale_factor_temporal), causal=True),
            normalization=Normalization(factor=1.0, mean=tuple(config.latents_mean), std=tuple(config.latents_std)),
        )

    def encode_frames(self, frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, chunk: int = 8,
                      progress: Progress = no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
        """The VAE's own causal encoding (``AutoencoderKLWan._encode``), streamed: the first
        frame alone, then 4 frames at a time through the encoder's feature cache; only one group
        of pixels is held. Frames past the last whole group are left out (4k+1 are encoded) and
        ``note`` says how many. The mean of the posterior, normalised as the pipelines do."""
        import torch
        from diffusers.models.autoencoders.autoencoder_kl_wan import patchify
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        from vidlatent.codec import pixels_to_tensor

        patch = vae.config.patch_size
        parts: list[torch.Tensor] = []
        done = 0
        left: list[np.ndarray] = []
        with torch.inference_mode(), _cache_cleared(vae):
            onload(vae)
            for group in _causal_groups(frames, TEMPORAL):
                if len(group) < (1 if not parts else TEMPORAL):
                    left = group
                    break
                pixels = pixels_to_tensor(group).permute(1, 0, 2, 3)[None]  # (1, 3, N, H, W)
                pixels = pixels.to(device=device, dtype=vae.dtype)
                if patch is not None:
                    pixels = patchify(pixels, patch_size=patch)
                vae._enc_conv_idx = [0]
                parts.append(vae.encoder(pixels, feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx))
                done += len(group)
                progress(done)
            if not parts:
                raise ValueError("no frames to encode")
            moments = vae.quant_conv(torch.cat(parts, 2))  # (1, 2C, T, h, w)
            latents = DiagonalGaussianDistribution(moments).mode()
        if left and note is not None:
            note(f"encoded {done} frames: Wan's VAE takes 4k+1, so the last {len(left)} frame(s) were left out")
        return self._normalize(latents.float(), vae)[0].permute(1, 0, 2, 3).cpu()  # (T, C, h, w)

    def decode(self, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
               settings: DecodeSettings | None = None, first: int = 0, last: int | None = None) -> Iterator[torch.Tensor]:
        """The VAE's own causal decoding (``AutoencoderKLWan._decode``), streamed: one latent frame
        after another through the decoder's feature cache, each one's pixels, (1, 3, N, H, W) in
        [-1, 1] (N = 1, then 4), yielded as they come, so memory does not grow with the length.
        Concatenated, they equal ``vae.decode`` of the whole clip bit for bit (tested). ``chunk``
        is not used: the decoder's own step is one latent frame (and it takes no timestep: no
        ``settings``). Pixel frames ``first`` to ``last``: a causal decoder decodes every frame
        up to ``last`` and leaves out those before ``first``.

        With the VAE's tiling on (``vae.enable_tiling()``) and frames larger than a tile, as
        ``vae.decode`` then does, the VAE's own tiled decode (``tiled_decode``), streamed too
        (``_tiled_steps``): equal to ``vae.tiled_decode`` bit for bit (tested).
        """
        import torch
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        patch = vae.config.patch_size
        rule = FrameRule(int(vae.config.scale_factor_temporal), causal=True)
        if last is not None:
            latents = latents[: rule.latent_index(last) + 1]  # the latent frames up to pixel frame ``last``
        done = 0  # pixel frames yielded or left out so far
        with torch.inference_mode(), _cache_cleared(vae):
            onload(vae)
            z = self._denormalize(latents.permute(1, 0, 2, 3)[None].to(device=device, dtype=vae.dtype), vae)  # (1, C, T, h, w)
            ratio = vae.spatial_compression_ratio
            tiled = getattr(vae, "use_tiling", False) and (
                z.shape[4] > vae.tile_sample_min_width // ratio or z.shape[3] > vae.tile_sample_min_height // ratio)
            for out in (_tiled_steps(vae, z) if tiled else _steps(vae, z)):
                if patch is not None:
                    out = unpatchify(out, patch_size=patch)
                count = int(out.shape[2])
                low, high = max(0, first - done), count if last is None else min(count, last + 1 - done)
                done += count
                if low < high:
                    yield torch.clamp(out if (low, high) == (0, count) else out[:, :, low:high], min=-1.0, max=1.0)

    def decode_working_bytes(self, vae: Any, size: tuple[int, int]) -> int | None:
        """A rough estimate: one untiled decoder step (``decode_work``) at the VAE's dtype."""
        work = self.decode_work(vae, size, 1, 1, tiled=False)
        return int(work.live * work.frames * work.pixels * work.channels * vae.dtype.itemsize)

    def decode_work(self, vae: Any, size: tuple[int, int], latent_frames: int, chunk: int, tiled: bool) -> DecodeWork:
        """A decoder step works on 4 pixel frames (``chunk`` is not used: the step is one latent
        frame) at full resolution after the patch, if any, or a tile's (256 px), with about
        twice the decoder's last-stage channels, in ``DECODE_LIVE`` tensors of that size at once
        (activations, norms and the causal caches)."""
        config = vae.config
        patch = config.patch_size or 1
        width, height = size
        if tiled:
            width, height = min(width, vae.tile_sample_min_width), min(height, vae.tile_sample_min_height)
        channels = 2 * int(config.decoder_base_dim or config.base_dim) * int(config.dim_mult[0])
        return DecodeWork(frames=TEMPORAL, pixels=(width // patch) * (height // patch), channels=channels, live=DECODE_LIVE)

    def denoiser_workload(self, config: dict[str, Any], latent: tuple[int, int, int]) -> Workload:
        """One token per patch of latent pixels (patch_size (1, 2, 2)); its cross-attention reads
        the prompt's tokens and, on image-to-video models (``image_dim``), the image's."""
        patch = config.get("patch_size") or (1, 2, 2)
        return patch_workload(latent, patch=(int(patch[0]), int(patch[1]), int(patch[2])),
                              heads=int(config.get("num_attention_heads", 40)), head_dim=int(config.get("attention_head_dim", 128)),
                              context=TEXT_TOKENS + (IMAGE_TOKENS if config.get("image_dim") else 0),
                              layers=int(config.get("num_layers", 1)), feedforward=config.get("ffn_dim"))

    @staticmethod
    def _normalize(raw: torch.Tensor, vae: Any) -> torch.Tensor:
        # The pipelines' arithmetic: (latents - mean) * (1 / std), in the latents' dtype.
        import torch

        channels = vae.config.z_dim
        mean = torch.tensor(vae.config.latents_mean).view(1, channels, 1, 1, 1).to(raw.device, raw.dtype)
        inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, channels, 1, 1, 1).to(raw.device, raw.dtype)
        return (raw - mean) * inverse_std

    @staticmethod
    def _denormalize(latents: torch.Tensor, vae: Any) -> torch.Tensor:
        # The pipelines' decode arithmetic: latents / (1 / std) + mean, in the VAE's dtype.
        import torch

        channels = vae.config.z_dim
        mean = torch.tensor(vae.config.latents_mean).view(1, channels, 1, 1, 1).to(latents.device, latents.dtype)
        inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, channels, 1, 1, 1).to(latents.device, latents.dtype)
        return latents / inverse_std + mean

    # --- sampling ------------------------------------------------------------------------------

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        # Two experts: guidance_scale_2 defaults to guidance_scale; one expert has no second scale.
        if pipeline.config.get("boundary_ratio") is None:
            return {"guidance_2": None}
        return {"guidance_2": values.get("guidance_2") if values.get("guidance_2") is not None else values.get("guidance")}

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"width": size[0], "height": size[1]}
        if image is not None:
            arguments["image"] = image
        if last_image is not None:
            arguments["last_image"] = last_image
        return arguments

    def initial_noise(self, model: Any, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """Both pipelines draw their latents first, (1, C, T, h, w) float32, from the generator
        (the image condition is encoded with the posterior's mean: no draw)."""
        return self.first_draw(model, int(model.pipeline.vae.config.z_dim), size, latent_frames, seed)

    def regenerate_tail(self, model: Any, call: Callable[..., Any], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> Any:
        # Wan's pipelines take no sigmas= or strength=: the pipeline runs with its own scheduler
        # made to keep only the last ``kept`` steps of its ``steps``-step schedule (timesteps and
        # sigmas both, so the multistep solver restarts at first order there, as diffusers'
        # video-to-video pipeline does), from the clip noised to the first kept level.
        sigma = self.schedule(model, steps)[steps - kept]
        start = self.noised(clean.float(), noise.float(), sigma)
        with tail_schedule(model.pipeline, kept):
            return call(latents=start, steps=steps)

    # --- one video over several processes ------------------------------------------------------

    def check_context_parallel(self, folder: Path | None, spec: ModelSpec, size: tuple[int, int], frames: int,
                               degree: int) -> None:
        """Ulysses splits the heads and the video's tokens over the processes: both must divide.
        The tokens are latent frames x (height / 16) x (width / 16) (Wan 2.2 TI2V: / 32), the
        transformer's patches."""
        config = (read_config(folder, "transformer") or read_config(folder, "transformer_2")) if folder else {}
        heads = int(config.get("num_attention_heads", 40))
        if heads % degree:
            raise UsageError(f"--context-parallel {degree}: {spec.title}'s transformer has {heads} attention heads, "
                             f"which {degree} processes cannot share evenly; use a divisor of {heads}")
        width, height = size
        tokens = spec.frame_rule.latent_frames(frames) * (height // spec.size_multiple) * (width // spec.size_multiple)
        if tokens % degree:
            raise UsageError(f"--context-parallel {degree}: a {width}x{height} video of {frames} frames is {tokens} tokens, "
                             f"which {degree} processes cannot share evenly; change --frames or --size")

    def enable_context_parallel(self, pipeline: Any, degree: int) -> None:
        from diffusers import ContextParallelConfig

        for transformer in (pipeline.transformer, getattr(pipeline, "transformer_2", None)):
            if transformer is not None:
                transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=degree))

    # --- tiny random models --------------------------------------------------------------------

    def build_tiny(self, name: str) -> Any:
        checkpoint = next(checkpoint for checkpoint in TINY_CHECKPOINTS if checkpoint.alias == name)
        return build_tiny_wan(wan22=checkpoint.z_dim == 48, last_image=checkpoint.last_image)


FAMILY = Wan()


@contextlib.contextmanager
def tail_schedule(pipeline: Any, kept: int) -> Iterator[None]:
    """Within the block, ``pipeline.scheduler.set_timesteps(n)`` makes the usual n-step schedule
    and keeps its last ``kept`` steps."""
    original = pipeline.scheduler

    class TailSchedule(type(original)):  # type: ignore[misc]
        def set_timesteps(self, *args: Any, **kwargs: Any) -> None:
            super().set_timesteps(*args, **kwargs)
            start = len(self.timesteps) - kept
            self.timesteps = self.timesteps[start:]
            self.sigmas = self.sigmas[start:]
            self.num_inference_steps = kept

    pipeline.scheduler = TailSchedule.from_config(original.config)
    try:
        yield
    finally:
        pipeline.scheduler = original


def _causal_groups(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """The first frame alone, then groups of ``size``; the last group may be short."""
    group: list[np.ndarray] = []
    first = True
    for frame in frames:
        group.append(frame)
        if first or len(group) == size:
            yield group
            group, first = [], False
    if group:
        yield group


def _steps(vae: Any, z: torch.Tensor) -> Iterator[torch.Tensor]:
    """``AutoencoderKLWan._decode``'s loop over (1, C, T, h, w) latents, one latent frame at a
    time through the decoder's feature cache: (1, C', N, H', W') each, before unpatchify."""
    x = vae.post_quant_conv(z)
    for index in range(x.shape[2]):
        vae._conv_idx = [0]
        step = x[:, :, index : index + 1]
        if index == 0:
            yield vae.decoder(step, feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=True)
        else:
            yield vae.decoder(step, feat_cache=vae._feat_map, feat_idx=vae._conv_idx)


def _tiled_steps(vae: Any, z: torch.Tensor) -> Iterator[torch.Tensor]:
    """``AutoencoderKLWan.tiled_decode``, streamed over time. diffusers decodes each spatial tile
    through all frames (clearing the feature cache between tiles), then blends the tiles of the
    whole video, which it holds; here every tile keeps its own feature cache, and each latent
    frame's tiles are decoded, blended and cropped exactly as there (the blend works frame by
    frame), so the output held is one frame group's. On a GPU the caches of the tiles not being
    decoded wait in CPU memory (together they are larger than one untiled frame's, by the
    tiles' overlap), so the GPU holds one tile's cache and activations at a time."""
    import torch

    park = torch.device("cpu") if z.device.type != "cpu" else None

    _, _, frames, height, width = z.shape
    ratio = vae.spatial_compression_ratio
    tile_height, tile_width = vae.tile_sample_min_height // ratio, vae.tile_sample_min_width // ratio
    stride_height, stride_width = vae.tile_sample_stride_height // ratio, vae.tile_sample_stride_width // ratio
    sample_height, sample_width = height * ratio, width * ratio
    sample_stride_height, sample_stride_width = vae.tile_sample_stride_height, vae.tile_sample_stride_width
    patch = vae.config.patch_size
    if patch is not None:
        sample_height, sample_width = sample_height // patch, sample_width // patch
        sample_stride_height, sample_stride_width = sample_stride_height // patch, sample_stride_width // patch
        blend_height = vae.tile_sample_min_height // patch - sample_stride_height
        blend_width = vae.tile_sample_min_width // patch - sample_stride_width
    else:
        blend_height = vae.tile_sample_min_height - sample_stride_height
        blend_width = vae.tile_sample_min_width - sample_stride_width
    starts = [(i, j) for i in range(0, height, stride_height) for j in range(0, width, stride_width)]
    caches = {start: [None] * len(vae._feat_map) for start in starts}
    for index in range(frames):
        rows: list[list[torch.Tensor]] = []
        for i in range(0, height, stride_height):
            row = []
            for j in range(0, width, stride_width):
                cache = caches[(i, j)] if park is None else _moved(caches[(i, j)], z.device)
                tile = vae.post_quant_conv(z[:, :, index : index + 1, i : i + tile_height, j : j + tile_width])
                row.append(vae.decoder(tile, feat_cache=cache, feat_idx=[0], first_chunk=index == 0))
                caches[(i, j)] = cache if park is None else _moved(cache, park)
            rows.append(row)
        result_rows = []
        for i, row in enumerate(rows):
            result_row = []
            for j, tile in enumerate(row):
                # blend_v and blend_h write into the tile they are given, as in tiled_decode.
                if i > 0:
                    tile = vae.blend_v(rows[i - 1][j], tile, blend_height)
                if j > 0:
                    tile = vae.blend_h(row[j - 1], tile, blend_width)
                result_row.append(tile[:, :, :, :sample_stride_height, :sample_stride_width])
            result_rows.append(torch.cat(result_row, dim=-1))
        yield torch.cat(result_rows, dim=3)[:, :, :, :sample_height, :sample_width]


def _moved(cache: list[Any], device: torch.device) -> list[Any]:
    # A decoder feature cache holds tensors, None and "Rep" markers; values move, never change.
    return [entry.to(device, non_blocking=True) if hasattr(entry, "to") else entry for entry in cache]


@contextlib.contextmanager
def _cache_cleared(vae: Any) -> Iterator[None]:
    # The VAE's feature caches belong to one causal pass: fresh before, released after (also
    # when a reader stops early).
    vae.clear_cache()
    try:
        yield
    finally:
        vae.clear_cache()


def build_tiny_wan(*, wan22: bool, last_image: bool = False) -> Any:
    """A tiny Wan pipeline of the real classes, weights drawn under SEED.

    ``wan22=False``: Wan 2.1 image-to-video (``WanImageToVideoPipeline``): a CLIP image encoder,
    a 36-channel transformer (16 noise + 4 mask + 16 condition channels) with image
    cross-attention, the 16-channel VAE at 1/8. ``last_image``: Wan 2.1 first-last-frame-to-video
    (FLF2V), as diffusers' FLF2V checkpoint: the same, with the transformer's image embedding
    taking both frames' CLIP tokens under a learnt position embedding (``pos_embed_seq_len``:
    twice the encoder's tokens), which is what makes the pipeline's ``last_image`` a condition. ``wan22=True``: Wan 2.2 TI2V (saved as
    ``WanPipeline``, as the real checkpoint): the 48-channel VAE with patch 2 at 1/16 and
    ``expand_timesteps``. Both: a tiny UMT5 text encoder and UniPC flow-matching sampling with
    the real checkpoints' flow shift (3.0 for 480p Wan 2.1, 5.0 for TI2V).
    """
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    from vidlatent.families.common import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(SEED)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8))
    torch.manual_seed(SEED)
    if wan22:
        vae = AutoencoderKLWan(base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                               latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True])
    else:
        # Non-trivial normalisation (the Wan 2.1 VAE's own statistics), so tests see it at work.
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])
    torch.manual_seed(SEED)
    heads, head_dim = 2, 12
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim,
        in_channels=48 if wan22 else 36, out_channels=48 if wan22 else 16, text_dim=32, freq_dim=256, ffn_dim=32,
        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=TINY_ROPE_MAX_SEQ_LEN,
        image_dim=None if wan22 else 8, added_kv_proj_dim=None if wan22 else heads * head_dim,
        pos_embed_seq_len=2 * TINY_CLIP_TOKENS if last_image else None,
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0 if wan22 else 3.0)
    if wan22:
        return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer,
                           expand_timesteps=True)
    torch.manual_seed(SEED)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2,
                                                     image_size=32, intermediate_size=16, patch_size=8))
    image_processor = CLIPImageProcessor(crop_size=32, size=32)
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                                   image_processor=image_processor, image_encoder=image_encoder, transformer=transformer)
