"""LTX-Video: text, image and video to video, natively conditioned on any frames it is given.

diffusers' ``LTXConditionPipeline`` (it loads the 0.9.5, 0.9.7 and 0.9.8 diffusers folders): a
``LTXVideoTransformer3DModel`` that denoises tokens (one per latent pixel; step callbacks see them
packed, (1, T * h * w, 128)), flow-matching Euler sampling on LTX's linear-quadratic schedule, a
T5 text encoder and ``AutoencoderKLLTXVideo``: 128 latent channels at 1/32 of the size, one latent
frame for the first pixel frame and one for every 8 after it ((T - 1) * 8 + 1 pixel frames), its
latents normalised by the per-channel ``latents_mean``/``latents_std`` kept in the VAE's weights.
The decoder is not causal and, from 0.9.1 on, conditioned on a timestep (``decode_timestep``,
with ``decode_noise_scale`` of noise mixed in first).

Conditions are native: an image or a video at a frame index, hard-conditioned (strength 1).
vidlatent uses that for image-to-video (the image at frame 0), keyframes (a last image at frame
F - 1) and extend (the clip's last 8k + 1 frames at frame 0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.families.base import (
    IMAGE_OPTIONAL, ComfyAssumption, Continuation, DecodeSettings, DecodeWork, Family, ModelSpec, Workload, decode_settings,
    encode_held, onload, patch_workload, read_config,
)
from vidlatent.errors import ModelError, UsageError
from vidlatent.layout import FrameRule, LatentLayout, Normalization
from vidlatent.progress import Progress, no_progress
from vidlatent.seeds import cpu_generator

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

CONDITION = "LTXConditionPipeline"
TEMPORAL = 8
SPATIAL = 32
TINY = "tiny-random-ltx"
SEED = 0
# The pipeline's defaults that vidlatent keeps (its signature): frame_rate 25, 161 frames.
DEFAULT_FRAMES = 161
DEFAULT_FPS = 25.0
# The keys of the transformer's cross-attention (vidlatent.planning): the condition pipeline's
# prompt length (max_sequence_length 256).
TEXT_TOKENS = 256
# Tensors of a decoder window's widest size alive at its peak (decode_work), calibrated on the
# tiny model's measured peak host memory (vidlatent.planning, BENCHMARKS.md section 10).
DECODE_LIVE = 3

# Decoding of timestep-conditioned VAEs (0.9.1 and later): decode_timestep 0.05 and
# decode_noise_scale 0.025, as in Lightricks' own inference configs (LTX-Video
# configs/ltxv-13b-0.9.7-dev.yaml and -distilled.yaml) and diffusers' LTX-Video documentation
# ("For timestep-aware VAE variants ... set decode_timestep to 0.05"). The pipeline's own default,
# decode_timestep 0, does not apply here: vidlatent decodes outside the pipeline.
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025

# The distilled checkpoints' schedule and guidance, from diffusers' LTX-Video documentation
# (0.9.7 distilled: "It requires guidance_scale to be set to 1.0 ... use the following custom
# timesteps": base pass [1000, 993, 987, 981, 975, 909, 725, 0.03]; the upscaling pass
# [1000, 909, 725, 421, 0] with denoise_strength 0.999; 0.9.8 distilled: "similar inference
# code", tone_map_compression_ratio 0.6 for the upsampler). The dev checkpoints' refining pass
# from the same page: denoise_strength 0.4 of 10 steps.
DISTILLED_TIMESTEPS = (1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 0.03)
DISTILLED_GUIDANCE = 1.0
DISTILLED_REFINE = {"timesteps": [1000.0, 909.0, 725.0, 421.0, 0.0], "denoise_strength": 0.999}
DEV_REFINE_STEPS = 10
DEV_REFINE = {"denoise_strength": 0.4}


@dataclass(frozen=True)
class Checkpoint:
    """An LTX checkpoint vidlatent knows: for checks before download, its native size (Lightricks'
    README: 768x512 up to 0.9.5, 1216x704 from 0.9.6) and its documented defaults."""

    alias: str
    hub: str
    version: str
    native_size: tuple[int, int]
    distilled: bool = False
    adain: float = 0.0  # the latent upsampler's AdaIN factor (diffusers' docs: 1.0 for the distilled models)
    tone_map: float = 0.0  # and its tone-map compression (0.6 for 0.9.8)


CHECKPOINTS = (
    Checkpoint("ltx-0.9.7-dev", "Lightricks/LTX-Video-0.9.7-dev", "0.9.7 13B", (1216, 704)),
    Checkpoint("ltx-0.9.7-distilled", "Lightricks/LTX-Video-0.9.7-distilled", "0.9.7 13B", (1216, 704), distilled=True,
               adain=1.0),
    Checkpoint("ltx-0.9.8-13b-distilled", "Lightricks/LTX-Video-0.9.8-13B-distilled", "0.9.8 13B", (1216, 704),
               distilled=True, adain=1.0, tone_map=0.6),
    Checkpoint("ltx-0.9.5", "Lightricks/LTX-Video-0.9.5", "0.9.5", (768, 512)),
)
# A local folder of a distilled checkpoint is known by its name (or its hub cache repository's) saying so.
LOCAL_DISTILLED = Checkpoint("", "", "", (1216, 704), distilled=True, adain=1.0)
TINY_NATIVE_SIZE = (64, 64)


def _known(hub_id: str) -> Checkpoint | None:
    """The checkpoint of CHECKPOINTS with this hub id, if any."""
    return next((checkpoint for checkpoint in CHECKPOINTS if checkpoint.hub == hub_id), None)


DEFAULT_UPSCALER = "Lightricks/ltxv-spatial-upscaler-0.9.7"
TINY_UPSCALER = "tiny-random-ltx-upscaler"


class LatentUpsampler:
    """LTX-Video's latent upsampler (``LTXLatentUpsamplePipeline``, 2x in space) and the refining pass
    after it, as diffusers' LTX-Video documentation gives them: the upsampler of
    ``Lightricks/ltxv-spatial-upscaler-0.9.7`` (AdaIN and tone-map settings per checkpoint), then a
    short pass of the same ``LTXConditionPipeline`` from the upsampled latents (0.4 of 10 steps for the
    dev checkpoints; the documented timesteps for the distilled ones). ``vidlatent.upscaling`` runs it.
    """

    factor = 2
    pipeline_class = "LTXLatentUpsamplePipeline"
    component = "latent_upsampler"  # the pipeline's model, moved to the device on load
    aliases = {"ltxv-spatial-upscaler-0.9.7": DEFAULT_UPSCALER}
    tiny = {TINY_UPSCALER: 1}
    knob_changes: dict[str, Any] = {}  # the refining pass keeps the user's knobs but its steps

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.checkpoint = checkpoint

    def default_for(self, model_id: str) -> str:
        """The upsampler that goes with a model: the tiny one for tiny-random-ltx, else Lightricks' 0.9.7."""
        return TINY_UPSCALER if model_id == TINY else DEFAULT_UPSCALER

    def filters(self) -> dict[str, float]:
        """The upsampler's documented AdaIN and tone-map settings for this checkpoint."""
        checkpoint = self.checkpoint or CHECKPOINTS[0]
        return {"adain_factor": checkpoint.adain, "tone_map_compression_ratio": checkpoint.tone_map}

    def refine_recipe(self) -> tuple[int | None, dict[str, Any]]:
        """The documented refining pass after the upsampler: (steps, pipeline arguments)."""
        if self.checkpoint is not None and self.checkpoint.distilled:
            return None, dict(DISTILLED_REFINE)
        return DEV_REFINE_STEPS, dict(DEV_REFINE)

    def refine_arguments(self, audio: torch.Tensor | None) -> dict[str, Any]:
        return {}  # LTX-Video clips are silent

    def check_folder(self, folder: Path, name: str) -> None:
        """Refuse, before the model loads, a folder that is not a pipeline folder."""
        if not (folder / "model_index.json").is_file():
            raise ModelError(f"--upscaler {name}: the folder has no model_index.json; expected a diffusers "
                             f"{self.pipeline_class} folder such as {DEFAULT_UPSCALER}'s")

    def load(self, folder: Path, vae: Any, dtype: Any) -> Any:
        """The ``LTXLatentUpsamplePipeline`` saved in ``folder``, with the model's VAE."""
        from diffusers import LTXLatentUpsamplePipeline

        return LTXLatentUpsamplePipeline.from_pretrained(folder, vae=vae, torch_dtype=dtype, use_safetensors=True)

    def upsample(self, pipeline: Any, latents: torch.Tensor, *, device: torch.device) -> torch.Tensor:
        """(T, C, h, w) normalised latents -> (T, C, 2h, 2w), through ``pipeline`` (an LTXLatentUpsamplePipeline)."""
        video = latents.permute(1, 0, 2, 3)[None].to(device)  # (1, C, T, h, w)
        output = pipeline(latents=video, output_type="latent", **self.filters())
        return output.frames[0].permute(1, 0, 2, 3).float().cpu()

    def build_tiny(self, name: str) -> Any:
        """A tiny ``LTXLatentUpsamplePipeline`` (no VAE: it takes the model's) with a latent upsampler of
        the real class, 128 channels, ``mid_channels`` 32 (its GroupNorms have 32 groups), weights drawn
        under SEED."""
        import torch
        from diffusers import LTXLatentUpsamplePipeline
        from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

        torch.manual_seed(SEED)
        model = LTXLatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1, dims=3,
                                        spatial_upsample=True, temporal_upsample=False)
        return LTXLatentUpsamplePipeline(vae=None, latent_upsampler=model)


class LTX(Family):
    name = "ltx"
    title = "LTX-Video"
    short_title = "LTX"
    pipeline_classes = (CONDITION, "LTXPipeline", "LTXImageToVideoPipeline")
    vae_class = "AutoencoderKLLTXVideo"
    components = ("vae", "text_encoder", "tokenizer", "transformer", "scheduler")
    aliases = {checkpoint.alias: checkpoint.hub for checkpoint in CHECKPOINTS}
    tiny = {TINY: 1}
    knob_arguments = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "fps": "frame_rate",
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "guidance": "guidance_scale",
        "decode_timestep": "decode_timestep",
        "decode_noise_scale": "decode_noise_scale",
        "timesteps": "timesteps",
    }
    pipeline_defaults = {"frames": DEFAULT_FRAMES, "steps": 50, "fps": DEFAULT_FPS, "prompt": None, "negative_prompt": None,
                         "guidance": 3.0, "decode_timestep": 0.0, "decode_noise_scale": None, "timesteps": None}
    default_notes = {"frames": f"which makes {FrameRule(TEMPORAL, causal=True).describe()}",
                     "steps": f"distilled models {len(DISTILLED_TIMESTEPS)}, their documented schedule",
                     "guidance": f"distilled models {DISTILLED_GUIDANCE}"}
    # The pipeline needs a prompt; the decode values are recorded for decode (see DECODE_TIMESTEP).
    knob_defaults = {"prompt": "", "decode_timestep": DECODE_TIMESTEP, "decode_noise_scale": DECODE_NOISE_SCALE}
    preferred_gpu_dtype = "bf16"  # diffusers' docs: bfloat16 is the recommended dtype
    timestep_decoder = True
    supports_cache = True  # LTXVideoTransformer3DModel is a CacheMixin
    compile_target = "repeated-blocks"  # its _repeated_blocks: LTXVideoTransformerBlock
    # LTXVideoLoraLoaderMixin: its lora_state_dict strips the original layout's diffusion_model.
    # prefix (the LTX-Video trainer's and ComfyUI's); no converter for Kohya's naming.
    lora_layouts = ("diffusers", "peft", "original")
    attention_dispatch = True  # LTXVideoAttnProcessor calls dispatch_attention_fn
    taylorseer_modules = (r"transformer_blocks\.\d+\.(attn1|attn2|ff)",)  # each block's attention and feed-forward
    single_file_components = ("transformer",)  # LTXVideoTransformer3DModel.from_single_file
    vae_tiling = True  # decode tiles with --vae-tiling, and by default past the VAE's tile size
    guidance_knob = "guidance"  # the pipeline batches the prompt and the negative one (guidance_batched)
    default_overlap = 2  # extend: the clip's last 9 frames (see README, "LTX-Video")
    callback_tokens = True  # step callbacks see (1, T * h * w, C), (t, h, w) order (patch size 1)
    fingerprint_modules = ("encoder.conv_out.conv", "decoder.conv_out.conv")
    # ComfyUI's LTXV VAE applies the per-channel statistics inside its encode and decode, and its
    # LTXV latent format's process_in is the identity: a .latent holds the normalised values.
    comfyui_normalized = True
    minimum_overlap = 1
    comfyui = {
        (5, 128): ComfyAssumption(
            layout=LatentLayout(family="ltx", spatial=SPATIAL, frame_rule=FrameRule(TEMPORAL, causal=True),
                                normalization=Normalization()),
            latent_space="AutoencoderKLLTXVideo/c128/s1/fp:", model=CHECKPOINTS[0].hub, fps=DEFAULT_FPS,
            description="LTX-Video latents (LTXV: 128 channels, normalised by the VAE's own statistics)",
        ),
    }

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.checkpoint = checkpoint
        self.upsampler = LatentUpsampler(checkpoint)

    # --- configs -------------------------------------------------------------------------------

    def for_model(self, model_id: str, folder: Path | None) -> Family:
        checkpoint = _known(model_id)
        if checkpoint is None and folder is not None and "distilled" in _checkpoint_name(Path(folder)).lower():
            checkpoint = LOCAL_DISTILLED
        return LTX(checkpoint) if checkpoint is not None else self

    def knob_defaults_for(self, given: dict[str, Any]) -> dict[str, Any]:
        if self.checkpoint is None or not self.checkpoint.distilled:
            return self.knob_defaults
        schedule = {} if "steps" in given else {"timesteps": DISTILLED_TIMESTEPS}
        return {**self.knob_defaults, "guidance": DISTILLED_GUIDANCE, **schedule}

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        vae, transformer = read_config(folder, "vae"), read_config(folder, "transformer")
        try:
            scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, ValueError):
            scheduler = {}
        if scheduler.get("use_dynamic_shifting"):
            raise ModelError(f"--model {model_id}: its scheduler shifts its schedule by resolution (use_dynamic_shifting), "
                             f"which {CONDITION} does not support; vidlatent runs LTX-Video 0.9.5 and later")
        scaling = vae.get("spatio_temporal_scaling") or [True, True, True, False]
        spatial = int(vae.get("spatial_compression_ratio") or int(vae.get("patch_size", 4)) * 2 ** sum(scaling))
        temporal = int(vae.get("temporal_compression_ratio") or int(vae.get("patch_size_t", 1)) * 2 ** sum(scaling))
        checkpoint = _known(model_id)
        native = TINY_NATIVE_SIZE if model_id == TINY else (checkpoint.native_size if checkpoint else (768, 512))
        return self._spec(native_size=native, size_multiple=spatial * int(transformer.get("patch_size", 1)), temporal=temporal,
                          timestep_decoder=bool(vae.get("timestep_conditioning", True)), title=self._title(model_id, checkpoint))

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        checkpoint = _known(hub_id)
        if checkpoint is None:
            return None
        return self._spec(native_size=checkpoint.native_size, size_multiple=SPATIAL, temporal=TEMPORAL,
                          timestep_decoder=True, title=self._title(hub_id, checkpoint))

    def tiny_spec(self, name: str) -> ModelSpec:
        return self._spec(native_size=TINY_NATIVE_SIZE, size_multiple=SPATIAL, temporal=TEMPORAL, timestep_decoder=True,
                          title=self.title)

    def _title(self, model_id: str, checkpoint: Checkpoint | None) -> str:
        checkpoint = checkpoint or self.checkpoint
        if checkpoint is None:
            return self.title
        kind = " distilled" if checkpoint.distilled else (" dev" if "dev" in model_id else "")
        return f"{self.title} {checkpoint.version}{kind}".replace("  ", " ").rstrip()

    def _spec(self, *, native_size: tuple[int, int], size_multiple: int, temporal: int, timestep_decoder: bool,
              title: str) -> ModelSpec:
        knobs = set(self.knob_arguments) - {"timesteps"} - (set() if timestep_decoder else {"decode_timestep", "decode_noise_scale"})
        return ModelSpec(
            family=self.name, title=title, native_size=native_size, size_multiple=size_multiple,
            frame_rule=FrameRule(temporal, causal=True), fps=DEFAULT_FPS, image=IMAGE_OPTIONAL, last_image=True,
            knobs=frozenset(knobs), frames=DEFAULT_FRAMES, last_image_optional=True,
        )

    def check_context_parallel(self, folder: Path | None, spec: ModelSpec, size: tuple[int, int], frames: int,
                               degree: int) -> None:
        # The transformer has a plan, but its text attention mask breaks it in diffusers 0.42.1
        # (huggingface/diffusers issue 14316).
        raise UsageError(f"--context-parallel: {spec.title}'s attention mask fails in diffusers' context parallelism "
                         "(diffusers issue 14316); run one video per process instead (torchrun without --context-parallel)")

    def pipeline_class(self, spec: ModelSpec, *, image: bool, last_image: bool = False) -> str:
        return CONDITION  # the condition pipeline loads the LTXPipeline and LTXImageToVideoPipeline folders too

    # --- latents -------------------------------------------------------------------------------

    def layout(self, vae: Any) -> LatentLayout:
        return LatentLayout(
            family=self.name, spatial=int(vae.spatial_compression_ratio),
            frame_rule=FrameRule(int(vae.temporal_compression_ratio), causal=True),
            normalization=Normalization(factor=float(vae.config.scaling_factor),
                                        mean=tuple(float(v) for v in vae.latents_mean.float().cpu()),
                                        std=tuple(float(v) for v in vae.latents_std.float().cpu())),
        )

    def encode_frames(self, frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, chunk: int = 8,
                      progress: Progress = no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
        """The VAE's encoding of the largest 8k + 1 frames of ``frames``, the posterior's mean,
        normalised as the pipelines normalise it. LTX's encoder is not streamed: the frames are held
        together (``note`` says how many past the last 8k + 1 were left out)."""
        raw = encode_held(frames, vae, device=device, title=self.title, progress=progress, note=note)
        return _normalize(raw.float(), vae)[0].permute(1, 0, 2, 3).cpu()  # (T, C, h, w)

    def tiles_by_default(self, vae: Any, size: tuple[int, int]) -> bool:
        """Frames wider or taller than the VAE's tile (512 px) are decoded in tiles unless
        --no-vae-tiling: one untiled decode of such frames is what runs out of memory."""
        width, height = size
        return width > vae.tile_sample_min_width or height > vae.tile_sample_min_height


    def decode_work(self, vae: Any, size: tuple[int, int], latent_frames: int, chunk: int, tiled: bool) -> DecodeWork:
        """A decoder window: ``chunk`` latent frames and the context the decoder reads around them
        (``decoder_context``), at the decoder's last stage (the size over its patch) with its first
        decoder channels, twice over (the up blocks' residual and their shuffled upsampling), or a
        tile's (512 px) with tiling."""
        config = vae.config
        width, height = size
        if tiled:
            width, height = min(width, vae.tile_sample_min_width), min(height, vae.tile_sample_min_height)
        before, after = decoder_context(vae.decoder)
        rule = FrameRule(int(vae.temporal_compression_ratio), causal=True)
        patch = int(config.patch_size)
        channels = 2 * int((config.decoder_block_out_channels or config.block_out_channels)[0])
        window = min(latent_frames, chunk + before + after)
        return DecodeWork(frames=rule.pixel_frames(window), pixels=(width // patch) * (height // patch),
                          channels=channels, live=DECODE_LIVE)

    def denoiser_workload(self, config: dict[str, Any], latent: tuple[int, int, int]) -> Workload:
        """One token per latent pixel (patch 1), a feed-forward 4x wide, the prompt's tokens in its
        cross-attention."""
        patch, patch_t = int(config.get("patch_size", 1)), int(config.get("patch_size_t", 1))
        return patch_workload(latent, patch=(patch_t, patch, patch), heads=int(config.get("num_attention_heads", 32)),
                              head_dim=int(config.get("attention_head_dim", 64)), context=TEXT_TOKENS,
                              layers=int(config.get("num_layers", 28)))

    def decode(self, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
               settings: DecodeSettings | None = None, first: int = 0, last: int | None = None) -> Iterator[torch.Tensor]:
        """Pixel frames ``first`` to ``last`` (default: all) of the clip, (1, 3, N, H, W) in [-1, 1], in
        order, ``chunk`` latent frames' worth at a time.

        The pipeline's decode arithmetic: latents denormalised, then (timestep-conditioned VAEs)
        (1 - s) * z + s * noise with the noise of ``torch.Generator("cpu").manual_seed(settings.seed)``
        drawn for the whole clip, and the decoder conditioned on ``settings.timestep``. The decoder
        is not causal: each chunk is decoded with the latent frames around it that the decoder's
        convolutions reach (``decoder_context``) and cut to its own frames, so chunks equal one
        ``vae.decode`` of the whole clip to float rounding (tested: within 1e-5) while memory
        grows with chunk + context, not with the clip. With the VAE's tiling on (the commands
        turn it on for frames over its 512 px tile, unless --no-vae-tiling) each window is
        decoded in spatial tiles, as diffusers' ``tiled_decode`` does.
        """
        import torch

        settings = settings if settings is not None else decode_settings(self, vae)
        total = int(latents.shape[0])
        rule = FrameRule(int(vae.temporal_compression_ratio), causal=True)
        last = rule.pixel_frames(total) - 1 if last is None else last
        before, after = decoder_context(vae.decoder)
        with torch.inference_mode():
            onload(vae)
            z, temb = _decoder_input(latents, vae, device, settings)  # (1, C, T, h, w)
            start, end = rule.latent_index(first), rule.latent_index(last) + 1
            for own_start in range(start, end, max(1, chunk)):
                own_end = min(end, own_start + max(1, chunk))
                window_start, window_end = max(0, own_start - before), min(total, own_end + after)
                pixels = _decode_window(vae, z[:, :, window_start:window_end], temb)
                # Window pixel q is clip pixel temporal * window_start + q (the decoder's upsamplers
                # drop the frames before a clip's first latent frame's own one).
                offset = rule.temporal * window_start
                low = max(first, rule.pixel_span(own_start)[0])
                high = min(last, rule.pixel_span(own_end - 1)[1])
                yield pixels[:, :, low - offset : high - offset + 1]

    # --- sampling ------------------------------------------------------------------------------

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if values.get("timesteps") is not None:
            changes["steps"] = len(values["timesteps"])
        vae = getattr(pipeline, "vae", None)
        if vae is not None and not vae.config.timestep_conditioning:
            changes |= {"decode_timestep": None, "decode_noise_scale": None}
        return changes

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        """``image=`` at frame 0; with a last image, both as conditions at frames 0 and F - 1 (the
        pipeline's ``image=`` list form keeps only the first of several images)."""
        arguments: dict[str, Any] = {"width": size[0], "height": size[1]}
        if last_image is not None:
            from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

            if frames is None:
                raise ValueError("a last frame needs the frame count, to place it")
            arguments["conditions"] = [LTXVideoCondition(image=image, frame_index=0),
                                       LTXVideoCondition(image=last_image, frame_index=frames - 1)]
        elif image is not None:
            arguments["image"] = image
        return arguments

    def initial_noise(self, model: Any, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """The pipeline draws its latents first, (1, C, T, h, w) float32, from the generator."""
        return self.first_draw(model, int(model.pipeline.transformer.config.in_channels), size, latent_frames, seed)

    def schedule(self, model: Any, steps: int) -> list[float]:
        """The pipeline's own schedule: LTX's linear-quadratic timesteps through its scheduler."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import linear_quadratic_schedule

        scheduler = model.pipeline.scheduler
        scheduler.set_timesteps(timesteps=linear_quadratic_schedule(steps) * 1000, device="cpu")
        return [float(sigma) for sigma in scheduler.sigmas]

    def sigma_after_step(self, pipeline: Any, step: int) -> float:
        # The scheduler's own position: right also when denoise_strength cut the schedule's start.
        return float(pipeline.scheduler.sigmas[pipeline.scheduler.step_index])

    def regenerate_tail(self, model: Any, call: Callable[..., Any], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> Any:
        """Strength S = kept / steps starts at noise level S itself and runs ``kept`` steps: the
        pipeline's own ``kept``-step schedule scaled into [0, S].

        The pipeline's ``denoise_strength`` alone would keep the last steps of its schedule, which
        stays near 1 for half of them (strength 0.5 starts at sigma 0.975), and it reads
        ``latents=`` only when denoise_strength < 1. So the scaled schedule is passed as
        ``timesteps=`` after one level above it, and denoise_strength cuts exactly that level: the
        pipeline noises the clip to S with its own first draw, the seed's noise (``noise``).
        """
        timesteps = [1000.0, *self.tail_record(steps, kept)["timesteps"]]
        return call(latents=clean, steps=None, timesteps=timesteps, denoise_strength=(kept + 0.5) / (kept + 1))

    def tail_record(self, steps: int, kept: int) -> dict[str, Any]:
        """The timesteps a partial strength runs: the ``kept``-step linear-quadratic schedule scaled
        into [0, S] (not a distilled checkpoint's own timesteps, which start near 1000)."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import linear_quadratic_schedule

        strength = kept / steps
        return {"timesteps": [float(level) * strength * 1000.0 for level in linear_quadratic_schedule(kept)]}

    def continuation(self, model: Any, latents: torch.Tensor, overlap: int) -> Continuation:
        """The pipeline's own video conditioning: the clip's last (overlap - 1) * 8 + 1 pixel frames
        as a condition at frame 0, strength 1 (overlap 1: its last frame, as an image), so the new
        segment's first ``overlap`` latent frames are the clip's end and the rest continue it. Nothing
        is pinned: the condition holds them."""
        from PIL import Image

        from vidlatent.codec import video_to_pixels

        rule = model.layout.frame_rule
        last = rule.pixel_frames(int(latents.shape[0])) - 1
        first = last - rule.pixel_frames(overlap) + 1
        tail = [Image.fromarray(frame) for pixels in self.decode(latents, model.vae, device=model.execution_device,
                                                                 first=first, last=last)
                for frame in video_to_pixels(pixels)]
        if len(tail) == 1:
            return Continuation(image=tail[0], pinned=latents[:0])
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        condition = LTXVideoCondition(video=tail, frame_index=0, strength=1.0)
        return Continuation(image=None, pinned=latents[:0], arguments={"conditions": [condition]}, size=tail[0].size)

    # --- tiny random models --------------------------------------------------------------------

    def build_tiny(self, name: str) -> Any:
        return build_tiny_ltx()


FAMILY = LTX()


def _checkpoint_name(folder: Path) -> str:
    """A folder's own name, or for a hub cache snapshot (…/models--OWNER--NAME/snapshots/HASH) the repository's."""
    folder = folder.resolve()
    return folder.parent.parent.name if folder.parent.name == "snapshots" else folder.name



def _normalize(raw: torch.Tensor, vae: Any) -> torch.Tensor:
    # The pipelines' arithmetic: (latents - mean) * scaling_factor / std.
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(raw.device, raw.dtype)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(raw.device, raw.dtype)
    return (raw - mean) * float(vae.config.scaling_factor) / std


def _decoder_input(latents: torch.Tensor, vae: Any, device: torch.device,
                   settings: DecodeSettings | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(T, C, h, w) file latents -> what the pipeline hands ``vae.decode``: the denormalised latents
    (1, C, T, h, w), noised for timestep-conditioned VAEs, and the timestep (or None)."""
    import torch

    z = latents.permute(1, 0, 2, 3)[None].to(device=device, dtype=torch.float32)
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(device, torch.float32)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(device, torch.float32)
    z = (z * std / float(vae.config.scaling_factor) + mean).to(vae.dtype)
    if settings is None or not vae.config.timestep_conditioning:
        return z, None
    noise = torch.randn(z.shape, generator=cpu_generator(settings.seed), dtype=z.dtype).to(device)
    scale = torch.tensor([settings.noise_scale], device=device, dtype=z.dtype)[:, None, None, None, None]
    return (1 - scale) * z + scale * noise, torch.tensor([settings.timestep], device=device, dtype=z.dtype)


def _decode_window(vae: Any, z: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
    """One decoder call on (1, C, t, h, w): in spatial tiles where the VAE's tiling is on (by
    --vae-tiling, or by default for frames over its tile size: ``LTX.tiles_by_default``)."""
    if getattr(vae, "use_tiling", False):
        return vae.tiled_decode(z, temb, return_dict=False)[0]
    return vae.decoder(z, temb)


def decoder_context(decoder: Any) -> tuple[int, int]:
    """Latent frames before and after a frame that its decoding depends on: the temporal reach of
    the decoder's convolutions, each counted at the frame rate it runs at (the up blocks double it)."""
    from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoCausalConv3d

    before = after = 0.0
    rate = 1

    def reach(module: Any) -> None:
        nonlocal before, after
        for conv in module.modules():
            if isinstance(conv, LTXVideoCausalConv3d):
                extent = conv.kernel_size[0] - 1
                before += (extent if conv.is_causal else extent // 2) / rate
                after += (0 if conv.is_causal else extent // 2) / rate

    reach(decoder.conv_in)
    reach(decoder.mid_block)
    for block in decoder.up_blocks:
        if block.conv_in is not None:
            reach(block.conv_in)
        for upsampler in block.upsamplers or ():
            reach(upsampler)
            rate *= upsampler.stride[0]
        for resnet in block.resnets:
            reach(resnet)
    reach(decoder.conv_out)
    return math.ceil(before), math.ceil(after)


def build_tiny_ltx() -> Any:
    """A tiny ``LTXConditionPipeline`` of the real classes, weights drawn under SEED: a 0.9.5-style
    VAE (128 channels, 1/32 and 1/8 compression set explicitly, timestep-conditioned decoder,
    decoder channels halving per level) with non-trivial latent statistics, a one-layer
    transformer (cross-attention width = heads x head dim, caption channels = the T5's d_model), a
    tiny T5 encoder with a tokenizer made in code, and the flow-matching Euler scheduler without
    dynamic shifting (the condition pipeline passes no ``mu``)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from vidlatent.families.common import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(SEED)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                                           relative_attention_num_buckets=8))
    torch.manual_seed(SEED)
    vae = AutoencoderKLLTXVideo(
        latent_channels=128, block_out_channels=(8, 8, 8, 8, 8), down_block_types=("LTXVideo095DownBlock3D",) * 4,
        decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True,) * 4, decoder_spatio_temporal_scaling=(True,) * 3, decoder_inject_noise=(False,) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"), upsample_residual=(True,) * 3,
        upsample_factor=(2,) * 3, timestep_conditioning=True, patch_size=4, patch_size_t=1, encoder_causal=True,
        decoder_causal=False, spatial_compression_ratio=SPATIAL, temporal_compression_ratio=TEMPORAL,
    )
    statistics = torch.Generator().manual_seed(SEED)
    vae.latents_mean.copy_(torch.randn(128, generator=statistics) * 0.1)
    vae.latents_std.copy_(torch.rand(128, generator=statistics) * 0.5 + 0.75)
    torch.manual_seed(SEED)
    heads, head_dim = 2, 8
    transformer = LTXVideoTransformer3DModel(in_channels=128, out_channels=128, num_attention_heads=heads, attention_head_dim=head_dim,
                                             cross_attention_dim=heads * head_dim, num_layers=1, caption_channels=32)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False)
    return LTXConditionPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer)
