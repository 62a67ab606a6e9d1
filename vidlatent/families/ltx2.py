"""LTX-2: video and its sound, generated together.

diffusers' ``LTX2Pipeline`` (text) and ``LTX2ImageToVideoPipeline`` (an image as the first frame):
an ``LTX2VideoTransformer3DModel`` that denoises video tokens and audio tokens side by side (each
stream attends to the other), flow-matching Euler sampling, a Gemma text encoder whose hidden
states pass through ``LTX2TextConnectors``, the video VAE ``AutoencoderKLLTX2Video`` (128
channels at 1/32 of the size, (T - 1) * 8 + 1 pixel frames) and the audio VAE
``AutoencoderKLLTX2Audio`` (mel spectrograms at 1/4 in time and in mel bins) with a vocoder that
turns its mel spectrograms into sound.

The latent space, stated once: with ``output_type="latent"`` both pipelines return
**denormalised** latents, the VAEs' own raw values, for the video ((1, C, T, h, w)) and for the
sound ((1, C, L, M)); passed back as ``latents=`` / ``audio_latents=`` they are normalised again
by the pipelines. So a clip's ``latents`` and ``audio`` hold raw VAE latents (its layout's
normalisation is the identity, and its audio layout says ``values: raw``), unlike Wan's and
LTX-Video's normalised values.

Beyond sampling it declares a latent upsampler (``LatentUpsampler``: ``LTX2LatentUpsamplePipeline``
and diffusers' documented stage 2, for ``--upscale``) and images at any frame (``FrameConditions``:
``LTX2ConditionPipeline``'s conditions, for ``--keyframe``).

Guidance is the pipeline's: classifier-free guidance for video and sound (``--guidance``,
``--audio-guidance``), spatio-temporal guidance on named transformer blocks (``--stg``,
``--stg-blocks``) and modality-isolation guidance (``--modality-guidance``), each a pass of the
transformer; left out, each is the pipeline's own default.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import ModelError, Note, UsageError
from vidlatent.families.base import (IMAGE_OPTIONAL, Continuation, DecodeSettings, DecodeWork, Family, ModelSpec, Workload,
                                     encode_held, onload, patch_workload, read_config)
from vidlatent.layout import AudioLayout, FrameRule, LatentLayout, Normalization
from vidlatent.progress import Progress, no_progress

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

TEXT = "LTX2Pipeline"
IMAGE = "LTX2ImageToVideoPipeline"
CONDITION = "LTX2ConditionPipeline"  # keyframes: --last-image, and --keyframe at any frame (FrameConditions)
TEMPORAL = 8
SPATIAL = 32
TINY = "tiny-random-ltx2"
SEED = 0
# The pipelines' own defaults (their __call__ signatures): 121 frames where no duration head is
# loaded (vidlatent loads none: it passes the frame count), 24 fps, 30 steps, and the guidance below.
DEFAULT_FRAMES = 121
DEFAULT_FPS = 24.0
DEFAULT_STG_BLOCKS = [28]
TEXT_TOKENS = 1024  # the pipelines' max_sequence_length: the prompt's tokens in cross-attention
# Decoder tensors of full size alive at a decode's peak (vidlatent.planning): LTX-Video's
# calibrated value, taken as is (LTX-2's own is not calibrated).
DECODE_LIVE = 3
# The pipelines' optional components that a sampling call of vidlatent's does not use: the prompt
# enhancer and its processor (vidlatent passes the prompt as given) and LTX-2.5's duration head
# (vidlatent passes the frame count).
UNUSED = ("processor", "prompt_enhancer", "duration_head", "audio_scheduler")
# diffusers' distilled schedule (pipelines/ltx2/utils.py DISTILLED_SIGMA_VALUES), run with guidance 1.
DISTILLED_GUIDANCE = 1.0


@dataclass(frozen=True)
class Checkpoint:
    """A public diffusers-format LTX-2 checkpoint: its alias, hub id and whether it is distilled."""

    alias: str
    hub: str
    title: str
    distilled: bool = False


CHECKPOINTS = (
    Checkpoint("ltx2", "Lightricks/LTX-2", "LTX-2 19B"),
    Checkpoint("ltx2.3-distilled", "diffusers/LTX-2.3-Distilled-Diffusers", "LTX-2.3 distilled", distilled=True),
    Checkpoint("ltx2.5", "Lightricks/LTX-2.5-Diffusers", "LTX-2.5"),
)


def _known(model_id: str) -> Checkpoint | None:
    return next((checkpoint for checkpoint in CHECKPOINTS if checkpoint.hub == model_id), None)


class Sound:
    """LTX-2's sound stream: its audio VAE and vocoder, and how its latents line up with the frames.

    The pipelines' sound latents are (1, C, L, M): C channels over L latent steps and M latent mel
    bins; a clip keeps them time first, (L, C, M). L = round(frames / fps * latents_per_second),
    with latents_per_second = the mel rate / hop length / the audio VAE's temporal compression
    (16000 / 160 / 4 = 25 for LTX-2), so latent step 0 starts with pixel frame 0. The sound is
    written at the vocoder's ``output_sampling_rate`` (24 kHz for LTX-2, 48 kHz with LTX-2.3's
    bandwidth extension), not at the mel rate.
    """

    components = ("audio_vae", "vocoder")

    def layout(self, audio_vae: Any, vocoder: Any, family: str) -> AudioLayout:
        config = audio_vae.config
        per_second = float(config.sample_rate) / float(config.mel_hop_length) / float(audio_vae.temporal_compression_ratio)
        return AudioLayout(family=family, sample_rate=self.rate(audio_vae, vocoder), latents_per_second=per_second)

    def rate(self, audio_vae: Any, vocoder: Any) -> int:
        """Samples per second of the sound the decoder writes: the vocoder's output rate."""
        return int(vocoder.config.output_sampling_rate)

    def from_pipeline(self, audio: torch.Tensor) -> torch.Tensor:
        """The pipeline's (1, C, L, M) sound latents -> (L, C, M) float32 on the CPU."""
        return audio[0].permute(1, 0, 2).float().cpu()

    def to_pipeline(self, audio: torch.Tensor) -> torch.Tensor:
        """(L, C, M) -> the pipelines' (1, C, L, M) ``audio_latents=``."""
        return audio.permute(1, 0, 2)[None]

    def decode(self, audio: torch.Tensor, audio_vae: Any, vocoder: Any, *, device: torch.device) -> np.ndarray:
        """(L, C, M) raw sound latents -> (samples, channels) float32 in [-1, 1], as the pipelines
        decode them: ``audio_vae.decode`` to a mel spectrogram, then the vocoder."""
        import torch

        with torch.inference_mode():
            onload(audio_vae)
            mel = audio_vae.decode(self.to_pipeline(audio).to(device=device, dtype=audio_vae.dtype), return_dict=False)[0]
            onload(vocoder)
            waveform = vocoder(mel.to(next(vocoder.parameters()).dtype))  # (1, channels, samples)
        return waveform[0].float().clamp(-1, 1).cpu().numpy().T


TINY_UPSCALER = "tiny-random-ltx2-upscaler"
UPSAMPLER = "latent_upsampler"  # the upsampler's subfolder, in a model repository as in a pipeline folder


class LatentUpsampler:
    """LTX-2's latent upsampler (``LTX2LatentUpsamplePipeline``, 2x in space) and the refining pass
    after it, as diffusers' LTX-2 documentation ("Two-stages Generation") gives them.

    The upsampler is ``LTX2LatentUpsamplerModel``, kept in a ``latent_upsampler`` subfolder of the
    model's own repository (``Lightricks/LTX-2``): so the default upscaler of a model is the model
    itself. ``--upscaler`` takes any folder or hub id with that subfolder (a pipeline folder such
    as a saved ``LTX2LatentUpsamplePipeline``), or a folder holding the upsampler's own
    ``config.json`` and weights. The pipeline gets the clip's raw latents as they are
    (``latents_normalized`` False, LTX-2's latent space) and returns raw ones.

    The refining pass is the documented stage 2: the same pipeline from the upsampled latents and
    the clip's sound latents (``audio_latents=``), re-noised to the first of
    ``STAGE_2_DISTILLED_SIGMA_VALUES`` (``noise_scale``) and denoised along them, guidance 1. The
    documented dev-model recipe also loads the distilled LoRA (``ltx-2-19b-distilled-lora-384``)
    and a scheduler without dynamic shifting; vidlatent loads no LoRA on LTX-2 yet, so on a dev
    model the pass runs without it (a note says so).
    """

    factor = 2
    pipeline_class = "LTX2LatentUpsamplePipeline"
    component = UPSAMPLER
    aliases: dict[str, str] = {}
    tiny = {TINY_UPSCALER: 1}
    knob_changes = {"guidance": DISTILLED_GUIDANCE}  # the refining pass runs guidance 1

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.checkpoint = checkpoint

    def default_for(self, model_id: str) -> str:
        """The model's own repository (its ``latent_upsampler`` subfolder); the tiny upsampler for the tiny model."""
        return TINY_UPSCALER if model_id == TINY else model_id

    def filters(self) -> dict[str, float]:
        return {}  # diffusers' LTX-2 recipe applies neither AdaIN nor tone mapping

    def refine_recipe(self) -> tuple[int | None, dict[str, Any]]:
        """The documented stage 2: (steps, pipeline arguments)."""
        from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

        sigmas = list(STAGE_2_DISTILLED_SIGMA_VALUES)
        return len(sigmas), {"sigmas": sigmas, "noise_scale": sigmas[0]}

    def refine_arguments(self, audio: torch.Tensor | None) -> dict[str, Any]:
        """The refining pass's arguments beyond the recipe's: the clip's (L, C, M) sound latents as
        ``audio_latents=`` (refined with the picture). Says, once per pass, what a dev model lacks."""
        if self.checkpoint is None or not self.checkpoint.distilled:
            warnings.warn(Note("--upscale: the refining pass runs the distilled stage-2 schedule; diffusers' recipe for "
                               "a dev LTX-2 model also loads the distilled LoRA, which vidlatent does not apply on LTX-2 "
                               "yet: use a distilled model, or upscale --no-refine for the upsampled latents alone"))
        return {"audio_latents": Sound().to_pipeline(audio)} if audio is not None else {}

    def check_folder(self, folder: Path, name: str) -> None:
        """Refuse, before the model loads, a folder with neither the upsampler's subfolder nor its config."""
        if not (folder / UPSAMPLER / "config.json").is_file() and not (folder / "config.json").is_file():
            raise ModelError(f"--upscaler {name}: {folder} has no {UPSAMPLER} folder and no upsampler config.json; LTX-2 "
                             f"keeps its upsampler in the model repository's {UPSAMPLER} folder ({CHECKPOINTS[0].hub} has "
                             "one): give --upscaler such a folder or hub id, or the upsampler's own folder")

    def load(self, folder: Path, vae: Any, dtype: Any) -> Any:
        """``LTX2LatentUpsamplePipeline(vae, LTX2LatentUpsamplerModel)`` as diffusers' docs build it,
        the model read from ``folder``'s ``latent_upsampler`` subfolder or from ``folder`` itself."""
        from diffusers import LTX2LatentUpsamplePipeline
        from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

        subfolder = UPSAMPLER if (folder / UPSAMPLER).is_dir() else None
        model = LTX2LatentUpsamplerModel.from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, use_safetensors=True)
        return LTX2LatentUpsamplePipeline(vae=vae, latent_upsampler=model)

    def upsample(self, pipeline: Any, latents: torch.Tensor, *, device: torch.device) -> torch.Tensor:
        """(T, C, h, w) raw latents -> (T, C, 2h, 2w) raw latents, through ``pipeline``."""
        video = latents.permute(1, 0, 2, 3)[None].to(device)  # (1, C, T, h, w)
        output = pipeline(latents=video, output_type="latent")
        return output.frames[0].permute(1, 0, 2, 3).float().cpu()

    def build_tiny(self, name: str) -> Any:
        """A tiny ``LTX2LatentUpsamplePipeline`` (no VAE: it takes the model's) with an upsampler of the
        real class, 128 channels, ``mid_channels`` 32 (its GroupNorms have 32 groups), the rational
        resampler (LTX-2's default), weights drawn under SEED."""
        import torch
        from diffusers import LTX2LatentUpsamplePipeline
        from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

        torch.manual_seed(SEED)
        model = LTX2LatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1, dims=3)
        return LTX2LatentUpsamplePipeline(vae=None, latent_upsampler=model)


@dataclass(frozen=True)
class FrameConditions:
    """Images at any frame (``generate --keyframe INDEX:IMAGE``, the capability
    ``Family.frame_conditions``): ``LTX2ConditionPipeline``'s ``conditions=``, one
    ``LTX2VideoCondition(frames=IMAGE, index=LATENT_INDEX)`` per image, strength 1.

    The pipeline takes a *latent* index, as Lightricks' code does: index 0 replaces the first
    latent frame (pixel frame 0); index k >= 1 adds the image as keyframe tokens at pixel frame
    (k - 1) * 8 + 1. So pixel frames 0, 1, 9, 17, ... are placed exactly; another INDEX goes to the
    nearest of them, up to the last latent frame's (F - 8), with a note (``placements``).
    """

    pipeline_class: str = CONDITION

    def latent_index(self, frame: int, frames: int) -> int:
        """The latent index whose keyframe stands nearest pixel frame ``frame`` of ``frames``."""
        rule = FrameRule(TEMPORAL, causal=True)
        last = rule.latent_frames(frames) - 1
        return 0 if frame == 0 else min(last, (frame - 1 + TEMPORAL // 2) // TEMPORAL + 1)

    def pixel_frame(self, index: int) -> int:
        """Where the pipeline puts a keyframe of latent index ``index``."""
        return 0 if index == 0 else (index - 1) * TEMPORAL + 1

    def placements(self, given: dict[int, str], count: int) -> list[str]:
        """Notes for the pixel frames not placed where asked (``given``: frame -> the --keyframe text;
        ``count`` frames made); two that would stand at one frame are refused."""
        notes, taken = [], {}
        for frame, text in sorted(given.items()):
            placed = self.pixel_frame(self.latent_index(frame, count))
            if placed in taken:
                raise UsageError(f"--keyframe {text} and --keyframe {taken[placed]}: LTX-2 places both at frame {placed} "
                                 "(it places keyframes at frames 0, 1, 9, 17, ...: 8k + 1); give them frames 8 apart")
            taken[placed] = text
            if placed != frame:
                notes.append(f"--keyframe {text}: LTX-2 places keyframes by latent frame, at frames 0, 1, 9, 17, ... "
                             f"(8k + 1); frame {frame} stands at frame {placed}")
        return notes

    def arguments(self, known: dict[int, Image.Image], frames: int) -> dict[str, Any]:
        """``conditions=`` for the images ``known`` (pixel frame -> image at the output size)."""
        from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

        return {"conditions": [LTX2VideoCondition(frames=image, index=self.latent_index(frame, frames))
                               for frame, image in sorted(known.items())]}


class LTX2(Family):
    name = "ltx2"
    title = "LTX-2"
    short_title = "LTX-2"
    pipeline_classes = (TEXT, IMAGE, CONDITION)
    vae_class = "AutoencoderKLLTX2Video"
    components = ("vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder", "scheduler", *UNUSED)
    aliases = {checkpoint.alias: checkpoint.hub for checkpoint in CHECKPOINTS}
    tiny = {TINY: 1}
    knob_arguments = {
        "frames": "num_frames",
        "steps": "num_inference_steps",
        "fps": "frame_rate",
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "guidance": "guidance_scale",
        "audio_guidance": "audio_guidance_scale",
        "stg": "stg_scale",
        "stg_blocks": "spatio_temporal_guidance_blocks",
        "modality_guidance": "modality_scale",
        "timesteps": "sigmas",  # a distilled checkpoint's own schedule, as sigmas
    }
    pipeline_defaults = {"frames": None, "steps": 30, "fps": DEFAULT_FPS, "prompt": None, "negative_prompt": None,
                         "guidance": 3.0, "audio_guidance": 7.0, "stg": 1.0, "stg_blocks": DEFAULT_STG_BLOCKS,
                         "modality_guidance": 3.0, "timesteps": None}
    # The pipeline needs a prompt; the frame count is passed (no duration head is loaded).
    knob_defaults = {"prompt": "", "frames": DEFAULT_FRAMES}
    default_notes = {"frames": f"which makes {FrameRule(TEMPORAL, causal=True).describe()}",
                     "steps": "distilled models 8, their documented schedule",
                     "guidance": f"distilled models {DISTILLED_GUIDANCE}",
                     "stg_blocks": "a note where the model lacks it"}
    preferred_gpu_dtype = "bf16"
    supports_cache = True  # LTX2VideoTransformer3DModel is a CacheMixin
    compile_target = "repeated-blocks"
    lora_layouts = ()  # LTX2LoraLoaderMixin exists; vidlatent's LoRA checks are not tested on LTX-2 yet
    guidance_knob = "guidance"  # the pipelines batch the prompt and the negative one
    vae_tiling = True
    default_overlap = 1
    minimum_overlap = 1
    maximum_overlap = 1  # extend conditions a segment on the clip's last frame, as its first
    fingerprint_modules = ("encoder.conv_out.conv", "decoder.conv_out.conv")
    sound = Sound()
    frame_conditions = FrameConditions()
    # ComfyUI's LTX VAEs apply their per-channel statistics inside encode and decode, so its LTX-2
    # latents (the video's, and the sound's separate [B, C, T, F] latent, normalised over the packed
    # C x F features) hold normalised values; a clip holds raw ones and not the statistics.
    comfyui_unwritable = ("ComfyUI's LTX-2 latents are normalised by the video and audio VAEs' per-channel statistics "
                          "(its VAEs apply them in encode and decode), and an LTX-2 clip holds raw latents without "
                          "those statistics, so vidlatent does not write them yet: keep the .safetensors file")

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.checkpoint = checkpoint
        self.upsampler = LatentUpsampler(checkpoint)

    # --- configs -------------------------------------------------------------------------------

    def for_model(self, model_id: str, folder: Path | None) -> Family:
        checkpoint = _known(model_id)
        return LTX2(checkpoint) if checkpoint is not None else self

    def knob_defaults_for(self, given: dict[str, Any]) -> dict[str, Any]:
        if self.checkpoint is None or not self.checkpoint.distilled:
            return self.knob_defaults
        from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

        schedule = {} if "steps" in given else {"timesteps": tuple(DISTILLED_SIGMA_VALUES)}
        return {**self.knob_defaults, "guidance": DISTILLED_GUIDANCE, **schedule}

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        vae, transformer = read_config(folder, "vae"), read_config(folder, "transformer")
        spatial = int(vae.get("spatial_compression_ratio") or SPATIAL)
        return self._spec(model_id, size_multiple=spatial * int(transformer.get("patch_size", 1)),
                          temporal=int(vae.get("temporal_compression_ratio") or TEMPORAL),
                          blocks=int(transformer["num_layers"]) if "num_layers" in transformer else None)

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        # Checked before a download: the compression every LTX-2 VAE has; the blocks are read once the configs are there.
        return self._spec(hub_id, size_multiple=SPATIAL, temporal=TEMPORAL, blocks=None) if _known(hub_id) else None

    def tiny_spec(self, name: str) -> ModelSpec:
        return self._spec(name, size_multiple=SPATIAL, temporal=TEMPORAL, blocks=1)

    def decode_work(self, vae: Any, size: tuple[int, int], latent_frames: int, chunk: int, tiled: bool) -> DecodeWork:
        """One decoder call of the whole clip (``decode`` hands frames on in chunks, but decodes them
        at once), at the decoder's last stage (the size over its patch) with twice its first decoder
        channels, as LTX-Video's; a tile's size with tiling."""
        config = vae.config
        width, height = size
        if tiled:
            width, height = min(width, vae.tile_sample_min_width), min(height, vae.tile_sample_min_height)
        patch = int(config.patch_size)
        channels = 2 * int((config.decoder_block_out_channels or config.block_out_channels)[0])
        frames = FrameRule(int(vae.temporal_compression_ratio), causal=True).pixel_frames(latent_frames)
        return DecodeWork(frames=frames, pixels=(width // patch) * (height // patch), channels=channels, live=DECODE_LIVE)

    def denoiser_workload(self, config: dict[str, Any], latent: tuple[int, int, int]) -> Workload:
        """The video stream: one token per latent pixel (patch 1), a feed-forward 4x wide, the
        prompt's tokens in cross-attention. The sound's tokens (25 per second) are few beside them."""
        patch, patch_t = int(config.get("patch_size", 1)), int(config.get("patch_size_t", 1))
        return patch_workload(latent, patch=(patch_t, patch, patch), heads=int(config.get("num_attention_heads", 32)),
                              head_dim=int(config.get("attention_head_dim", 128)), context=TEXT_TOKENS,
                              layers=int(config.get("num_layers", 48)))

    def _spec(self, model_id: str, *, size_multiple: int, temporal: int, blocks: int | None) -> ModelSpec:
        checkpoint = _known(model_id) or self.checkpoint
        return ModelSpec(
            family=self.name, title=checkpoint.title if checkpoint is not None else self.title,
            native_size=(64, 64) if model_id == TINY else (768, 512),  # the pipelines' default width and height
            size_multiple=size_multiple, frame_rule=FrameRule(temporal, causal=True), fps=DEFAULT_FPS, image=IMAGE_OPTIONAL,
            last_image=True, last_image_optional=True, knobs=frozenset(set(self.knob_arguments) - {"timesteps"}), frames=DEFAULT_FRAMES, blocks=blocks,
        )

    def pipeline_class(self, spec: ModelSpec, *, image: bool, last_image: bool = False) -> str:
        # The condition pipeline (it loads the same folders) for keyframes; else the text or image one.
        return CONDITION if last_image else (IMAGE if image else TEXT)

    def sampling_components(self, spec: ModelSpec, *, image: bool) -> tuple[str, ...]:
        return tuple(name for name in self.components if name not in UNUSED)

    def resolve_knobs(self, pipeline: Any, values: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if values.get("timesteps") is not None:
            changes["steps"] = len(values["timesteps"])
        fps = values.get("fps")
        if isinstance(fps, float) and fps.is_integer():  # the pipeline's default 24.0: --fps takes whole frames per second
            changes["fps"] = int(fps)
        blocks = values.get("stg_blocks")
        if isinstance(blocks, list):  # the pipeline's default, a list: recorded as the flag says it
            named = ",".join(str(block) for block in blocks)
            config = getattr(getattr(pipeline, "transformer", None), "config", None)
            count = getattr(config, "num_layers", None)
            lacking = count is not None and any(block >= count for block in blocks)
            # A default naming a block the model lacks is not recorded: as a flag it would be refused
            # (replay), and left out it does what it did.
            changes["stg_blocks"] = None if lacking else named
            if lacking and values.get("stg"):
                warnings.warn(Note(f"the pipeline's default --stg-blocks {named} names a block this model lacks (it has "
                                   f"{count}): spatio-temporal guidance runs its extra pass but perturbs nothing, as "
                                   "diffusers does; name blocks below it with --stg-blocks, or --stg 0"))
        return changes

    # --- latents -------------------------------------------------------------------------------

    def layout(self, vae: Any) -> LatentLayout:
        # The file holds the raw VAE latents the pipelines return: the normalisation is the identity.
        return LatentLayout(family=self.name, spatial=int(vae.spatial_compression_ratio),
                            frame_rule=FrameRule(int(vae.temporal_compression_ratio), causal=True), normalization=Normalization())

    def encode_frames(self, frames: Iterable[np.ndarray], vae: Any, *, device: torch.device, chunk: int = 8,
                      progress: Progress = no_progress, note: Callable[[str], None] | None = None) -> torch.Tensor:
        """The VAE's encoding (the posterior's mode, raw, as the clip holds it) of the largest 8k + 1
        frames of ``frames``; held together (``note`` says how many past them were left out)."""
        raw = encode_held(frames, vae, device=device, title=self.title, progress=progress, note=note)
        return raw[0].permute(1, 0, 2, 3).float().cpu()  # (T, C, h, w)

    def decode(self, latents: torch.Tensor, vae: Any, *, device: torch.device, chunk: int = 8,
               settings: DecodeSettings | None = None, first: int = 0, last: int | None = None) -> Iterator[torch.Tensor]:
        """Pixel frames ``first`` to ``last`` of the clip, (1, 3, N, H, W) in [-1, 1]: one ``vae.decode``
        of the raw latents, as the pipelines decode them (with --vae-tiling, diffusers' own spatial and
        temporal tiling bounds its memory), handed on ``chunk`` * 8 frames at a time."""
        import torch

        rule = FrameRule(int(vae.temporal_compression_ratio), causal=True)
        last = rule.pixel_frames(int(latents.shape[0])) - 1 if last is None else last
        with torch.inference_mode():
            onload(vae)
            z = latents.permute(1, 0, 2, 3)[None].to(device=device, dtype=vae.dtype)  # (1, C, T, h, w)
            pixels = vae.decode(z, None, return_dict=False)[0]  # (1, 3, N, H, W)
        step = max(1, chunk) * rule.temporal
        for start in range(first, last + 1, step):
            yield pixels[:, :, start : min(last + 1, start + step)]

    # --- sampling ------------------------------------------------------------------------------

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        """``image=`` (LTX2ImageToVideoPipeline); with a last image, both as the condition pipeline's
        ``conditions=``, strength 1: the image at latent frame 0, the last image at the last latent
        frame (index -1: the pipeline places keyframes by latent frame, so it stands at pixel frame
        F - 8, the first of that latent frame's eight)."""
        arguments: dict[str, Any] = {"width": size[0], "height": size[1]}
        if last_image is not None:
            from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

            first = [LTX2VideoCondition(frames=image, index=0)] if image is not None else []
            arguments["conditions"] = [*first, LTX2VideoCondition(frames=last_image, index=-1)]
        elif image is not None:
            arguments["image"] = image
        return arguments

    def initial_noise(self, model: Any, size: tuple[int, int], latent_frames: int, seed: int) -> torch.Tensor:
        """The pipeline draws the video's unit noise first, (1, C, T, h, w) float32."""
        return self.first_draw(model, int(model.pipeline.transformer.config.in_channels), size, latent_frames, seed)

    def regenerate_tail(self, model: Any, call: Callable[..., Any], clean: torch.Tensor,
                        noise: torch.Tensor, steps: int, kept: int) -> Any:
        """The last ``kept`` steps of the pipeline's own ``steps``-step schedule: its unshifted sigmas
        (1 down to 1/steps) from step ``steps - kept`` on, passed as ``sigmas=`` (the scheduler shifts
        them as it shifts the whole schedule), and the clip given as ``latents=`` with the pipeline's
        ``noise_scale`` at the first shifted level, so the pipeline noises it there with its own draw."""
        import numpy as np
        from diffusers.pipelines.ltx2.pipeline_ltx2 import calculate_shift

        sigmas = [float(value) for value in np.linspace(1.0, 1 / steps, steps)[steps - kept :]]
        scheduler = copy.deepcopy(model.pipeline.scheduler)
        config = scheduler.config
        tokens = int(clean.shape[0] * clean.shape[2] * clean.shape[3])  # (T, C, h, w): one token per latent pixel
        mu = calculate_shift(tokens, config.get("base_image_seq_len", 1024), config.get("max_image_seq_len", 4096),
                             config.get("base_shift", 0.95), config.get("max_shift", 2.05))
        scheduler.set_timesteps(sigmas=sigmas, mu=mu, device="cpu")
        return call(latents=clean, steps=None, sigmas=sigmas, noise_scale=float(scheduler.sigmas[0]))

    def tail_record(self, steps: int, kept: int) -> dict[str, Any]:
        import numpy as np

        return {"sigmas": [round(float(value), 6) for value in np.linspace(1.0, 1 / steps, steps)[steps - kept :]]}

    def continuation(self, model: Any, latents: torch.Tensor, overlap: int) -> Continuation:
        """The clip's last frame as the segment's image (``LTX2ImageToVideoPipeline``'s own
        conditioning at frame 0); nothing pinned. The pipelines take no sound to continue from:
        each segment's sound is made with its picture (``vidlatent.generation.extend`` joins it)."""
        from PIL import Image

        from vidlatent.codec import video_to_pixels

        last = FrameRule(int(model.vae.temporal_compression_ratio), causal=True).pixel_frames(int(latents.shape[0])) - 1
        (pixels,) = list(self.decode(latents, model.vae, device=model.execution_device, first=last, last=last))
        return Continuation(image=Image.fromarray(video_to_pixels(pixels)[0]), pinned=latents[:0])

    # --- tiny random models --------------------------------------------------------------------

    def build_tiny(self, name: str) -> Any:
        return build_tiny_ltx2()


FAMILY = LTX2()


def tiny_gemma_tokenizer() -> Any:
    """A Gemma BPE tokenizer built in code (no download): characters and three merges. With
    ``add_bos_token`` every text, the empty negative prompt too, starts with <bos>, as Gemma's own
    tokenizer does (without it an empty prompt gets an all-zero attention mask)."""
    from transformers import GemmaTokenizer

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", *"abcdefghijklmnopqrstuvwxyz0123456789.,", "▁", "▁a", "▁t", "he",
              "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    vocab = {piece: index for index, piece in enumerate(pieces)}
    return GemmaTokenizer(vocab=vocab, merges=[("▁", "a"), ("▁", "t"), ("h", "e")], add_bos_token=True,
                          pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")


def build_tiny_ltx2() -> Any:
    """A tiny ``LTX2Pipeline`` of the real classes, weights drawn under SEED.

    Facts its configs keep (measured on diffusers 0.42.1): the video VAE's compression is given
    explicitly (1/32, 1/8: computed from four scaling levels it would say 1/64 and 1/16), its
    decoder widths double per level; the packed audio width, latent channels x latent mel bins
    (2 x 8 / 4), equals the audio VAE's ``base_channels`` (its statistics' length) and the
    transformer's ``audio_in_channels``; the connectors' learnable registers need a text length
    that is a multiple of 8 (the pipelines' 1024); the Gemma 3 text encoder takes 1024 positions;
    the vocoder upsamples each mel frame (hop 160 at 16 kHz) to 240 samples, its 24 kHz output
    rate, as LTX-2's does. Non-trivial VAE statistics, so that raw and normalised values differ.
    """
    import torch
    from diffusers import (
        AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, LTX2Pipeline, LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tokenizer = tiny_gemma_tokenizer()
    vocabulary = len(tokenizer)
    torch.manual_seed(SEED)
    text_config = dict(vocab_size=vocabulary, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1, head_dim=8, max_position_embeddings=1024, sliding_window=16,
                       layer_types=["sliding_attention", "full_attention"])
    vision_config = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14)
    text_encoder = Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=text_config, vision_config=vision_config, mm_tokens_per_image=4, boi_token_index=vocabulary - 3,
        eoi_token_index=vocabulary - 2, image_token_index=vocabulary - 1))
    hidden, layers = 16, 2
    torch.manual_seed(SEED)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=128, out_channels=128, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=1, caption_channels=hidden, rope_double_precision=False, rope_type="split")
    torch.manual_seed(SEED)
    connectors = LTX2TextConnectors(
        caption_channels=hidden, text_proj_in_factor=layers + 1, video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=8, video_connector_num_layers=1, video_connector_num_learnable_registers=8,
        audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=8, connector_rope_base_seq_len=32, rope_double_precision=False, rope_type="split")
    torch.manual_seed(SEED)
    vae = AutoencoderKLLTX2Video(
        latent_channels=128, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True,) * 4, decoder_spatio_temporal_scaling=(True,) * 3,
        decoder_inject_noise=(False,) * 4, downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(True,) * 3, upsample_factor=(2,) * 3, timestep_conditioning=False, patch_size=4, patch_size_t=1,
        spatial_compression_ratio=SPATIAL, temporal_compression_ratio=TEMPORAL)
    torch.manual_seed(SEED)
    audio_vae = AutoencoderKLLTX2Audio(base_channels=4, output_channels=2, ch_mult=(1,), num_res_blocks=1, in_channels=2,
                                       resolution=32, latent_channels=2, sample_rate=16000, mel_hop_length=160, mel_bins=8)
    statistics = torch.Generator().manual_seed(SEED)
    vae.latents_mean.copy_(torch.randn(128, generator=statistics) * 0.1)
    vae.latents_std.copy_(torch.rand(128, generator=statistics) * 0.5 + 0.75)
    audio_vae.latents_mean.copy_(torch.randn(4, generator=statistics) * 0.1)
    audio_vae.latents_std.copy_(torch.rand(4, generator=statistics) * 0.5 + 0.75)
    torch.manual_seed(SEED)
    vocoder = LTX2Vocoder(in_channels=2 * 8, hidden_channels=16, out_channels=2, upsample_kernel_sizes=[12, 10, 16],
                          upsample_factors=[6, 5, 8], resnet_kernel_sizes=[3], resnet_dilations=[[1]], output_sampling_rate=24000)
    return LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
                        tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder)

