"""Wan VACE: Wan 2.1/2.2 with VACE's control stream, for masked video editing.

diffusers' ``WanVACEPipeline`` runs a ``WanVACETransformer3DModel``: Wan's transformer with
control blocks (``vace_layers``, layer 0 among them) that read a video, a mask (white:
regenerate, black: keep) and optional reference images. The conditioning is encoded by Wan's
own VAE as inactive and reactive latents (the video outside and inside the mask) next to the
mask pixel-unshuffled 8x8: 2 * z + 64 input channels (96 for the 16-channel VAE). One mechanism
does inpainting, outpainting, reference subjects and keyframes at any frame
(``vidlatent.regions`` builds its video and mask lists).

Its latents are Wan's (the same VAE, the same normalisation): a VACE clip is recorded as the Wan
family's (``name`` "wan"), so Wan models decode and extend it and VACE edits Wan clips. This
module builds on the Wan family by import, as the lead asked (a VACE model is a Wan model plus a
control stream); Wan's own behaviour is untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.families.base import IMAGE_OPTIONAL, Family, ModelSpec
from vidlatent.families.wan import CHECKPOINTS as WAN_CHECKPOINTS
from vidlatent.families.wan import ROPE_MAX_SEQ_LEN, SEED, TEMPORAL, TINY_ROPE_MAX_SEQ_LEN, Checkpoint, Wan

if TYPE_CHECKING:
    from PIL import Image

VACE = "WanVACEPipeline"
GRAY = (128, 128, 128)  # a frame to regenerate, as diffusers' VACE example fills it (127.5 in VACE's own code)

# The diffusers-format VACE checkpoints (model cards: 480p for 1.3B, 720p for 14B; 16 fps).
CHECKPOINTS = (
    Checkpoint("wan21-vace-1.3b", "Wan-AI/Wan2.1-VACE-1.3B-diffusers", (832, 480), 16.0, IMAGE_OPTIONAL),
    Checkpoint("wan21-vace-14b", "Wan-AI/Wan2.1-VACE-14B-diffusers", (1280, 720), 16.0, IMAGE_OPTIONAL),
    # Wan 2.2 VACE-Fun (alibaba-pai), converted to diffusers by a diffusers maintainer (PR #12324):
    # two experts switched at boundary_ratio 0.875, Wan 2.1's VAE.
    Checkpoint("wan22-vace-fun-a14b", "linoyts/Wan2.2-VACE-Fun-14B-diffusers", (1280, 720), 16.0, IMAGE_OPTIONAL, experts=2),
)
TINY = {"tiny-random-wan-vace": ((64, 64), 16.0)}
KNOWN = {checkpoint.hub: (checkpoint.native_size, checkpoint.fps) for checkpoint in CHECKPOINTS} | TINY
assert not {checkpoint.alias for checkpoint in CHECKPOINTS} & {checkpoint.alias for checkpoint in WAN_CHECKPOINTS}


@dataclass(frozen=True)
class VaceConditioning:
    """What a VACE model conditions on besides the prompt, as pipeline arguments (the capability
    ``Family.regions``): a video and a mask of the same frames (PIL images; white regenerates)
    and reference images, each of which the pipeline prepends as one latent frame. ``fill`` is the
    colour of pixels to regenerate in the video."""

    fill: tuple[int, int, int] = GRAY

    def arguments(self, video: list[Image.Image] | None, mask: list[Image.Image] | None,
                  references: list[Image.Image]) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if video is not None:
            arguments["video"], arguments["mask"] = video, mask
        if references:
            arguments["reference_images"] = list(references)
        return arguments

    def keyframes(self, known: dict[int, Image.Image], frames: int, size: tuple[int, int]
                  ) -> tuple[list[Image.Image], list[Image.Image]]:
        """The video and mask that keep frame i as ``known[i]`` and generate the others."""
        return keyframe_video(known, frames, size)

    def reference_frames(self, references: int) -> int:
        """The latent frames the pipeline's output starts with for ``references`` images."""
        return references


class WanVace(Wan):
    name = "wan"  # the latents' family: Wan's VAE and normalisation
    title = "Wan VACE"
    short_title = "Wan"  # its knobs and their defaults are Wan's: --help lists them once
    pipeline_classes = (VACE,)
    components = ("vae", "text_encoder", "tokenizer", "transformer", "transformer_2", "scheduler")
    aliases = {checkpoint.alias: checkpoint.hub for checkpoint in CHECKPOINTS}
    tiny = {name: 1 for name in TINY}
    regions = VaceConditioning()

    def spec(self, folder: Path, model_index: dict[str, Any], model_id: str) -> ModelSpec:
        return self._vace(super().spec(folder, model_index, model_id), *KNOWN.get(model_id, ((832, 480), 16.0)))

    def known_spec(self, hub_id: str) -> ModelSpec | None:
        for checkpoint in CHECKPOINTS:
            if checkpoint.hub == hub_id:
                spec = self._spec(native_size=checkpoint.native_size, fps=checkpoint.fps, image=IMAGE_OPTIONAL,
                                  z_dim=checkpoint.z_dim, last_image=True, experts=checkpoint.experts, size_multiple=16,
                                  temporal=TEMPORAL, positions=ROPE_MAX_SEQ_LEN, patch_frames=1)
                return self._vace(spec, checkpoint.native_size, checkpoint.fps)
        return None

    def tiny_spec(self, name: str) -> ModelSpec:
        native_size, fps = TINY[name]
        spec = self._spec(native_size=native_size, fps=fps, image=IMAGE_OPTIONAL, z_dim=16, last_image=True, experts=1,
                          size_multiple=16, temporal=TEMPORAL, positions=TINY_ROPE_MAX_SEQ_LEN, patch_frames=1)
        return self._vace(spec, native_size, fps)

    def _vace(self, spec: ModelSpec, native_size: tuple[int, int], fps: float) -> ModelSpec:
        # Any frame may be given (a keyframe): an image is the first frame, a last image the last.
        version = "2.2" if spec.experts == 2 else "2.1"
        return dataclasses.replace(spec, title=f"Wan {version} VACE", native_size=native_size, fps=fps, image=IMAGE_OPTIONAL,
                                   last_image=True, last_image_optional=True)

    def pipeline_class(self, spec: ModelSpec, *, image: bool, last_image: bool = False) -> str:
        return VACE

    def sampling_components(self, spec: ModelSpec, *, image: bool) -> tuple[str, ...]:
        return self.components

    def pipeline_arguments(self, model: Any, *, image: Image.Image | None, last_image: Image.Image | None,
                           size: tuple[int, int], frames: int | None = None) -> dict[str, Any]:
        """An image is the first frame kept and a last image the last, the frames between
        regenerated: VACE's video and mask (``keyframe_video``); neither: text to video."""
        arguments: dict[str, Any] = {"width": size[0], "height": size[1]}
        if image is None and last_image is None:
            return arguments
        if frames is None:
            raise ValueError("VACE places its keyframes in a video: the frame count is needed")
        known = {0: image} if image is not None else {}
        if last_image is not None:
            known[frames - 1] = last_image
        video, mask = self.regions.keyframes(known, frames, size)
        return {**arguments, **self.regions.arguments(video, mask, [])}

    def check_context_parallel(self, folder: Path | None, spec: ModelSpec, size: tuple[int, int], frames: int,
                               degree: int) -> None:
        # WanVACETransformer3DModel has no context-parallel plan (_cp_plan) in diffusers 0.42.1.
        Family.check_context_parallel(self, folder, spec, size, frames, degree)

    def build_tiny(self, name: str) -> Any:
        return build_tiny_wan_vace()


FAMILY = WanVace()


def keyframe_video(known: dict[int, Image.Image], frames: int, size: tuple[int, int]) -> tuple[list[Image.Image], list[Image.Image]]:
    """VACE's video and mask for keyframes: frame i is ``known[i]`` (already at ``size``) and kept
    (mask black), every other frame gray and regenerated (mask white), as diffusers' own VACE
    example builds them."""
    from PIL import Image

    gray, black, white = Image.new("RGB", size, GRAY), Image.new("L", size, 0), Image.new("L", size, 255)
    video = [known[index].convert("RGB") if index in known else gray for index in range(frames)]
    mask = [black if index in known else white for index in range(frames)]
    return video, mask


def build_tiny_wan_vace() -> Any:
    """A tiny Wan 2.1 VACE pipeline of the real classes, weights drawn under SEED: the tiny UMT5
    text encoder and the tiny 16-channel VAE of ``tiny-random-wan`` (same configs and seed, so the
    two share a latent space, as the real Wan 2.1 and VACE checkpoints do), a two-layer
    ``WanVACETransformer3DModel`` with one control block at layer 0 (VACE requires it) reading
    2 * 16 + 64 = 96 channels, and UniPC flow-matching sampling with flow shift 3.0 (480p)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline, WanVACETransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from vidlatent.families.common import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(SEED)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8))
    torch.manual_seed(SEED)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    torch.manual_seed(SEED)
    z_dim, unshuffled_mask = 16, 8 * 8
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=z_dim, out_channels=z_dim,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=TINY_ROPE_MAX_SEQ_LEN, vace_layers=[0], vace_in_channels=2 * z_dim + unshuffled_mask,
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer)
