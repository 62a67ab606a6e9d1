"""SkyReels-V2 diffusion forcing: long video from Wan's text encoder and VAE with its own transformer.

diffusers' ``SkyReelsV2DiffusionForcingPipeline`` (text), ``…ImageToVideoPipeline`` (an image first)
and ``…VideoToVideoPipeline`` (a video's last frames as history), around a
``SkyReelsV2Transformer3DModel`` that takes one timestep per latent frame. A video longer than the
model's window (``base_num_frames``) is made natively in overlapping windows: each window after
the first starts from the last ``overlap_history`` frames of the one before, clean (or re-noised by
``addnoise_condition``), and with ``ar_step`` > 0 the frames are denoised on a staggered schedule,
``causal_block_size`` latent frames at a time (diffusion forcing).

The text encoder (UMT5), the VAE (``AutoencoderKLWan``, Wan 2.1's latent space: normalised per
channel) and the UniPC flow-matching scheduler are Wan 2.1's, so this family is Wan's codec,
layout and schedule (imported from ``vidlatent.families.wan``, unchanged) with its own
pipelines, knobs and continuation.

What vidlatent does around the pipelines, measured on diffusers 0.42.1:

- ``causal_block_size`` is written into the transformer's config (``num_frame_per_block``), where
  it stays for later calls and any ``save_pretrained``: each call here puts the config back.
- a ``causal_block_size`` that does not divide a window's latent frames leaves the trailing frames
  as untouched noise, without an error; one that does not divide the history's drops history frames
  with a warning: both are refused before loading (``check_knobs``).
- the video-to-video pipeline needs ``overlap_history`` always (else a ``TypeError``), encodes the
  video's last ``overlap_history`` frames as its history and returns them, re-encoded, first; its
  decoded output repeats them after the input video. ``extend`` keeps the clip's own latents and
  appends only the new frames (README "Long video").
- ``fps`` only switches the transformer's frame-rate embedding between 16 and any other rate.
- the text-to-video pipeline cannot start from given latents (its ``prepare_latents`` returns one
  tensor where four are unpacked), so ``edit --strength`` below 1 needs the image pipeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError
from vidlatent.families.base import IMAGE_OPTIONAL, Continuation, ModelSpec, read_config
from vidlatent.families.wan import ROPE_MAX_SEQ_LEN, TEMPORAL, TINY_ROPE_MAX_SEQ_LEN, Wan, build_tiny_wan
from vidlatent.layout import FrameRule

if TYPE_CHECKING:
    import torch

T2V = "SkyReelsV2DiffusionForcingPipeline"
I2V = "SkyReelsV2DiffusionForcingImageToVideoPipeline"
V2V = "SkyReelsV2DiffusionForcingVideoToVideoPipeline"
DEFAULT_FRAMES = 97  # the pipelines' num_frames and base_num_frames default (540P; 720P models: 121)
FPS = 24.0  # the pipelines' fps default, and SkyReels-V2's frame rate
RULE = FrameRule(TEMPORAL, causal=True)
# SkyReels' documented recommendations (the pipelines' docstrings): a history of 17 or 37 frames,
# re-noised by 20 (at most 50); ar_step 5 with causal_block_size 5 for asynchronous inference.
RECOMMENDED_HISTORY = 17
SEED = 0


@dataclass(frozen=True)
class Checkpoint:
    alias: str
    hub: str
    native_size: tuple[int, int]


# The public diffusers-format diffusion-forcing checkpoints (diffusers' docstrings name them). The
# 720P model's window is 121 frames (the pipeline's docstring); --window stays the pipeline's 97
# unless given, as every knob keeps its pipeline default.
CHECKPOINTS = (
    Checkpoint("skyreels-v2-df-1.3b-540p", "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers", (960, 544)),
    Checkpoint("skyreels-v2-df-14b-540p", "Skywork/SkyReels-V2-DF-14B-540P-Diffusers", (960, 544)),
    Checkpoint("skyreels-v2-df-14b-720p", "Skywork/SkyReels-V2-DF-14B-720P-Diffusers", (1280, 720)),
)
TINY = {"tiny-random-skyreels-df": (64, 64)}


def latent_frames(pixel_frames: int) -> int:
    """The pipelines' own rounding: (frames - 1) // 4 + 1."""
    return (pixel_frames - 1) // TEMPORAL + 1


def windows(frames: int, window: int, history: int | None, *, continuing: bool = False) -> list[int]:
    """The latent frames of each window a call makes, as the pipelines count them: ``frames`` pixel
    frames (with ``continuing``, the video-to-video call's, history included) in windows of
    ``window`` frames, each after the first sharing ``history`` frames with the one before. A call
    within one window (and not continuing) is one window of all its frames."""
    total, base = latent_frames(frames), latent_frames(window)
    if history is None or (not continuing and frames <= window):
        return [total]
    overlap = latent_frames(history)
    count = 1 + (total - base - 1) // (base - overlap) + 1
    sizes = []
    for index in range(count):
        if index == 0 and not continuing:
            sizes.append(base)
            continue
        done = index * (base - overlap) + overlap
        sizes.append(min(total - done + overlap, base))
    return sizes


def window_ranges(frames: int, window: int, history: int | None) -> list[tuple[int, int]]:
    """The pixel frames [first, end) of the clip that each window of a ``generate`` adds (its
    history frames belong to the window before)."""
    sizes = windows(frames, window, history)
    overlap = latent_frames(history) if history is not None and len(sizes) > 1 else 0
    ranges, made = [], 0
    for index, size in enumerate(sizes):
        new = size if index == 0 else size - overlap
        first, made = made, made + new
        ranges.append((RULE.pixel_frames(first) if first else 0, RULE.pixel_frames(made)))
    return ranges


class SkyReelsDF(Wan):
    name = "skyreels"
    title = "SkyReels-V2 DF"
    short_title = "SkyReels"
    pipeline_classes = (T2V,)  # the class the folders' model_index.json names; I2V and V2V run on its components
    components = ("vae", "text_encoder", "tokenizer", "transformer", "scheduler")
    aliases = {checkpoint.alias: checkpoint.hub for checkpoint in CHECKPOINTS}
    tiny = {name: 1 for name in TINY}
    knob_arguments = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "guidance": "guidance_scale",
        "fps": "fps",
        "window": "base_num_frames",
        "history": "overlap_history",
        "history_noise": "addnoise_condition",
        "ar_step": "ar_step",
        "causal_block": "causal_block_size",
    }
    pipeline_defaults = {"frames": DEFAULT_FRAMES, "steps": 50, "prompt": None, "negative_prompt": None, "guidance": 6.0,
                         "fps": 24, "window": DEFAULT_FRAMES, "history": None, "history_noise": 0, "ar_step": 0,
                         "causal_block": None}
    default_notes = {
        "frames": f"which makes {RULE.describe()}; beyond --window, in overlapping windows",
        "guidance": "with IMAGE 5.0",
        "fps": "the model tells only 16 from other rates",
        "window": "720P models: 121",
        "history": f"generate: none (one window); extend: {RECOMMENDED_HISTORY}, or less for short segments; "
                   "SkyReels recommends 17 or 37",
        "history_noise": "SkyReels recommends 20, at most 50",
        "ar_step": "SkyReels uses 5 with --causal-block 5",
        "causal_block": "the model's own (1)",
        "sampler": "the model's own scheduler (UniPC)",
        "shift": "the model's own flow_shift",
    }
    comfyui = {}  # ComfyUI's Wan 2.1 format holds these latents too; the registry reads it as Wan's
    single_file_components = ()
    lora_layouts = ()  # SkyReels' LoRA loader is not wired up or tested here
    continuation_pipeline = V2V
    default_overlap = latent_frames(RECOMMENDED_HISTORY)  # extend: a history of 17 frames
    minimum_overlap = 1

    # --- configs -------------------------------------------------------------------------------

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        vae = read_config(folder, "vae")
        transformer = read_config(folder, "transformer")
        known = {checkpoint.hub: checkpoint.native_size for checkpoint in CHECKPOINTS} | TINY
        patch = transformer.get("patch_size") or [1, 2, 2]
        return self._df_spec(native_size=known.get(model_id, (960, 544)),
                             size_multiple=int(vae.get("scale_factor_spatial") or 8) * int(patch[1]),
                             positions=int(transformer.get("rope_max_seq_len") or ROPE_MAX_SEQ_LEN), patch_frames=int(patch[0]))

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        for checkpoint in CHECKPOINTS:
            if checkpoint.hub == hub_id:
                return self._df_spec(native_size=checkpoint.native_size, size_multiple=16, positions=ROPE_MAX_SEQ_LEN,
                                     patch_frames=1)
        return None

    def tiny_spec(self, name: str) -> ModelSpec:
        return self._df_spec(native_size=TINY[name], size_multiple=16, positions=TINY_ROPE_MAX_SEQ_LEN, patch_frames=1)

    def _df_spec(self, *, native_size: tuple[int, int], size_multiple: int, positions: int, patch_frames: int) -> ModelSpec:
        # A long video runs in windows: the rotary bound is a window's, not the video's (no max_frames).
        return ModelSpec(
            family=self.name, title="SkyReels-V2 diffusion forcing", native_size=native_size, size_multiple=size_multiple,
            frame_rule=RULE, fps=FPS, image=IMAGE_OPTIONAL, last_image=False,
            knobs=frozenset(self.knob_arguments) | frozenset(self.scheduler_knobs), frames=DEFAULT_FRAMES,
            max_side=positions * size_multiple,
        )

    def pipeline_class(self, spec: ModelSpec, *, image: bool, last_image: bool = False) -> str:
        return I2V if image else T2V

    def sampling_components(self, spec: ModelSpec, *, image: bool) -> tuple[str, ...]:
        return self.components

    def check_knobs(self, knobs: Any, spec: ModelSpec, *, continuing: bool = False) -> None:
        """Refuse what the pipelines take without an error but mishandle (module docstring): window
        and history lengths the VAE cannot make, a history as long as a window, a long video
        without a history, and a causal block that divides some window or the history unevenly."""
        for flag, value in (("--window", knobs.window), ("--history", knobs.history)):
            if value is not None and not RULE.accepts(value):
                below, above = RULE.neighbours(value)
                raise UsageError(f"{flag} {value}: {self.title} counts frames as {RULE.describe()}; use {below} or {above}")
        frames = knobs.frames if knobs.frames is not None else DEFAULT_FRAMES
        window = knobs.window if knobs.window is not None else DEFAULT_FRAMES
        history = knobs.history
        long = continuing or frames > window
        if long and history is None:
            if continuing:
                return  # extend's history comes from --overlap or the default (resolve_overlap checks it then)
            raise UsageError(f"--frames {frames}: longer than the {window}-frame window, so each window continues the one "
                             f"before: give --history FRAMES (SkyReels recommends 17 or 37), or --window {frames}")
        if long and history is not None and latent_frames(history) >= latent_frames(min(window, frames)):
            what = f"the {min(window, frames)}-frame {'segment' if continuing and frames < window else 'window'}"
            raise UsageError(f"--history {history}: must be shorter than {what}; use fewer frames of history")
        block = knobs.causal_block
        if block is None:
            return
        sizes = windows(frames, window, history if long else None, continuing=continuing)
        uneven = [size for size in sizes if size % block]
        if uneven:
            raise UsageError(f"--causal-block {block}: must divide each window's latent frames ({', '.join(map(str, sizes))}), "
                             f"else the pipeline leaves the last frames as noise; use a divisor of {uneven[0]}, or change "
                             "--frames or --window")
        if long and history is not None and latent_frames(history) % block:
            raise UsageError(f"--causal-block {block}: must divide the history's {latent_frames(history)} latent frames "
                             f"(--history {history}), else the pipeline drops some; use a divisor, or change --history")

    def windows(self, knobs: Any, spec: ModelSpec) -> list[tuple[int, int]]:
        frames = knobs.frames if knobs.frames is not None else spec.frames
        window = knobs.window if knobs.window is not None else DEFAULT_FRAMES
        return window_ranges(frames, window, knobs.history if frames > window else None)

    def window_prompts(self, model: Any, prompts: list[str]) -> Callable[[Any, int, dict[str, Any]], dict[str, Any]]:
        """The pipeline encodes one prompt for the whole video; its step callback may hand back
        ``prompt_embeds``, which the later steps use. So each next prompt is encoded up front, as
        the pipeline encodes its own (``encode_prompt``, in the transformer's dtype), and handed
        back at the last step of each window (``num_timesteps`` is the window's step count)."""
        import torch

        pipeline = model.pipeline
        with torch.no_grad():
            embeds = [pipeline.encode_prompt(prompt=prompt, do_classifier_free_guidance=False, device=model.execution_device)[0]
                      .to(pipeline.transformer.dtype) for prompt in prompts]
        ended = 0

        def switch(pipe: Any, step: int, tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal ended
            if step == pipe.num_timesteps - 1 and ended < len(embeds):
                ended += 1
                return {"prompt_embeds": embeds[ended - 1]}
            return {}

        return switch

    # --- sampling ------------------------------------------------------------------------------

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        # The causal block the call runs with where not given: the transformer's own (its config,
        # which vidlatent keeps as the folder has it).
        if values.get("causal_block") is None:
            return {"causal_block": int(pipeline.transformer.config.num_frame_per_block)}
        return {}

    @contextlib.contextmanager
    def calling(self, pipeline: Any) -> Iterator[None]:
        """Put back the transformer's ``num_frame_per_block`` that a call's ``causal_block_size``
        writes into its config, so that no later job of the process (nor a save) inherits it."""
        transformer = pipeline.transformer
        own = transformer.config.num_frame_per_block
        try:
            yield
        finally:
            if transformer.config.num_frame_per_block != own:
                transformer._set_ar_attention(own)

    def regenerate_tail(self, model: Any, call: Callable[..., torch.Tensor], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> torch.Tensor:
        if type(model.pipeline).__name__ == T2V:
            raise UsageError(f"{self.title}'s text-to-video pipeline cannot start from a clip (diffusers 0.42.1: its "
                             "latents= fails); give IMAGE, the clip's first frame, or a strength of 1")
        return super().regenerate_tail(model, call, clean, noise, steps, kept)

    def continuation(self, model: Any, latents: torch.Tensor, overlap: int) -> Continuation:
        """The video-to-video pipeline with the clip's last ``overlap`` latent frames' worth of pixel
        frames ((overlap - 1) * 4 + 1) as the history it continues (``overlap_history``): it encodes
        them itself and returns them first, which extend leaves out."""
        from collections import deque

        from PIL import Image

        from vidlatent.codec import decode_frames

        history = RULE.pixel_frames(overlap)
        tail: deque[Any] = deque(maxlen=history)
        tail.extend(decode_frames(self, latents, model.vae, device=model.execution_device))
        spatial = model.layout.spatial
        size = (int(latents.shape[-1]) * spatial, int(latents.shape[-2]) * spatial)
        video = [Image.fromarray(frame) for frame in tail]
        return Continuation(image=None, pinned=latents[:0], arguments={"video": video, "overlap_history": history},
                            size=size)

    def check_context_parallel(self, folder: Path | None, spec: ModelSpec, size: tuple[int, int], frames: int,
                               degree: int) -> None:
        raise UsageError(f"--context-parallel: {self.title}'s transformer has no context-parallel plan in diffusers; "
                         "run one video per process instead (torchrun without --context-parallel)")

    # --- tiny random models --------------------------------------------------------------------

    def build_tiny(self, name: str) -> Any:
        return build_tiny_skyreels_df()


FAMILY = SkyReelsDF()


def build_tiny_skyreels_df() -> Any:
    """A tiny SkyReels-V2 diffusion-forcing pipeline: tiny Wan 2.1's text encoder, tokenizer and VAE
    (``build_tiny_wan``'s, the same weights), a tiny ``SkyReelsV2Transformer3DModel`` with the
    frame-rate embedding (``inject_sample_info``, as the DF checkpoints have), weights drawn under
    SEED, and UniPC flow matching with the text-to-video flow shift SkyReels documents (8.0)."""
    import torch
    from diffusers import SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel, UniPCMultistepScheduler

    wan = build_tiny_wan(wan22=False)
    torch.manual_seed(SEED)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16, text_dim=32,
        freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=TINY_ROPE_MAX_SEQ_LEN,
        inject_sample_info=True, num_frame_per_block=1,
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0)
    return SkyReelsV2DiffusionForcingPipeline(tokenizer=wan.tokenizer, text_encoder=wan.text_encoder, vae=wan.vae,
                                              scheduler=scheduler, transformer=transformer)
