"""Bare latent tensors into vidlatent clips: the library behind ``vidlatent convert --layout``.

A raw file is a safetensors file of latents that carries none of vidlatent's metadata: what a
diffusers script saves from ``pipe(..., output_type="latent")``, in whatever axis order. The
user says which axis is which (``--layout``) and whose latent space the numbers are in
(``--model``); the model's family supplies the rest without loading anything: the latent
layout it declares for latents of that many channels (the one ComfyUI latents are read with:
spatial compression, frame rule, normalisation), the latent space with an unknown fingerprint
(``AutoencoderKLWan/c16/s1/fp:``, which any VAE of that class, channels and scaling
matches), the model's frame rate, and the pixel size (the latents' times the spatial
compression).

The values must be as the family's pipeline sees them (``output_type="latent"``: Wan's
normalised by the VAE's ``latents_mean``/``latents_std``, SVD's scaled by 0.18215); they are
kept as they are, in float32, frames first. Reading goes through ``vidlatent.latentfile``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vidlatent.atomic import STDIO
from vidlatent.errors import InputError, ModelError, UsageError

if TYPE_CHECKING:
    import torch

    from vidlatent.families.base import ComfyAssumption
    from vidlatent.latentfile import LatentClip

AXES = "cthw"  # vidlatent's own order is t, c, h, w; a layout names these four, and n optionally
BATCH = "n"
LAYOUT_EXAMPLES = "ncthw (diffusers' and ComfyUI's video latents), cthw, tchw (vidlatent's), ntchw, nthwc"


def parse_layout(text: str) -> str:
    """``text`` as a layout: the tensor's axes in order, one letter each (n batch, c channels,
    t frames, h height, w width), c, t, h and w once and n at most once; UsageError otherwise."""
    layout = text.strip().lower()
    if sorted(layout) not in (sorted(AXES), sorted(BATCH + AXES)):
        raise UsageError(f"--layout {text!r}: name the tensor's axes in order, one letter each: c, t, h, w once and "
                         f"n (a batch of 1) at most once, e.g. {LAYOUT_EXAMPLES}")
    return layout


@dataclass(frozen=True)
class LatentTarget:
    """The latent space a --model names, for raw latents: found from its family, nothing loaded.

    Args:
        model_id: recorded in the clip (a hub id, a tiny model's name or an absolute folder).
        title: for messages.
        fps: the model's frame rate, the clip's.
        spaces: latent channels -> the family's layout and latent space for that many channels.
    """

    model_id: str
    title: str
    fps: float
    spaces: dict[int, ComfyAssumption]

    def space_for(self, channels: int, *, shape: str) -> ComfyAssumption:
        """The layout of ``channels``-channel latents; UsageError naming ``shape`` if the model has none."""
        if channels not in self.spaces:
            known = " or ".join(str(count) for count in sorted(self.spaces))
            raise UsageError(f"--layout, --model: the tensor ({shape}) has {channels} channels, but {self.title} latents "
                             f"have {known}; check which axis is c, or name the model the latents come from")
        return self.spaces[channels]


def target(model: str) -> LatentTarget:
    """The latent space of ``model`` (alias, hub id, diffusers folder or tiny model), from its
    family's declarations and, for a folder, its VAE's config; a checkpoint a family knows by
    hub id needs no folder and no download."""
    from vidlatent import families, models
    from vidlatent.families.base import read_config

    hub_id = models.ALIASES.get(model, model)
    known = families.known_spec(hub_id)
    if known is not None:
        family, spec = known
        model_id, folder = hub_id, None
    else:
        info = models.describe(model)  # a folder or a tiny model: its configs only
        family, spec, model_id, folder = info.family, info.spec, info.model_id, info.folder
    spaces = {channels: assumption for (_, channels), assumption in family.comfyui.items()}
    # Where the family's default for some channel count is this very checkpoint, that is its count.
    spaces = {channels: each for channels, each in spaces.items() if each.model == model_id} or spaces
    if folder is not None:
        vae = read_config(folder, "vae")
        declared = vae.get("z_dim") or vae.get("latent_channels")
        if declared is not None:
            if int(declared) not in spaces:
                raise ModelError(f"--model {model}: its VAE has {declared} latent channels; vidlatent knows the layout of "
                                 f"{spec.title} latents with {' or '.join(map(str, sorted(spaces)))}")
            spaces = {int(declared): spaces[int(declared)]}
    return LatentTarget(model_id=model_id, title=spec.title, fps=float(spec.fps), spaces=spaces)


def read_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (or of stdin, for ``-``), by name."""
    from vidlatent import latentfile

    expected = "a safetensors file of latents"
    tensors, _ = latentfile.parse_safetensors(latentfile.read_bytes(path, expected=expected), source=_source(path), expected=expected)
    return tensors


def pick_tensor(tensors: dict[str, torch.Tensor], name: str | None, *, source: str) -> tuple[str, torch.Tensor]:
    """The tensor called ``name``, or the file's only tensor; UsageError naming what there is."""
    names = ", ".join(sorted(tensors)) or "none"
    if name is not None:
        if name not in tensors:
            raise UsageError(f"--tensor {name}: {source} has no such tensor (it has {names})")
        return name, tensors[name]
    if len(tensors) != 1:
        raise UsageError(f"{source} holds {len(tensors)} tensors ({names}); say which is the latents with --tensor NAME")
    return next(iter(tensors.items()))


def to_clip(tensor: torch.Tensor, layout: str, goal: LatentTarget, *, source: str, name: str) -> LatentClip:
    """``tensor``, whose axes ``layout`` names (see ``parse_layout``), as a clip in ``goal``'s latent space.

    Args:
        tensor: the latents, as the family's pipeline sees them.
        layout: a checked layout.
        goal: the latent space (``target``).
        source, name: the file and the tensor's name, for messages and the history.
    """
    import torch

    from vidlatent.latentfile import LatentClip

    given, original_shape = layout, list(tensor.shape)
    if tensor.ndim != len(layout):
        raise UsageError(f"--layout {layout}: names {len(layout)} axes, but {source}'s tensor {name!r} has {tensor.ndim} "
                         f"(shape {original_shape})")
    shape = " ".join(f"{axis}={size}" for axis, size in zip(layout, original_shape))  # for messages: "n=1 c=16 t=16 ..."
    if not tensor.is_floating_point():
        raise InputError(f"{source}: tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}; latents are floating point")
    if BATCH in layout:
        batch = int(tensor.shape[layout.index(BATCH)])
        if batch != 1:
            raise UsageError(f"--layout {layout}: the tensor ({shape}) is a batch of {batch} videos; a clip is one video "
                             "(save each on its own)")
        tensor = tensor.select(layout.index(BATCH), 0)
        layout = layout.replace(BATCH, "")
    latents = tensor.permute([layout.index(axis) for axis in "tchw"]).float().contiguous()  # (T, C, h, w)
    frames, channels, height, width = latents.shape
    space = goal.space_for(channels, shape=shape)
    if frames < 1 or height < 1 or width < 1:
        raise UsageError(f"--layout {given}: the tensor ({shape}) is empty")
    low, high = torch.aminmax(latents)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        raise InputError(f"{source}: tensor {name!r} holds NaN or infinite values")
    spatial = space.layout.spatial
    clip = LatentClip(latents=latents, model=goal.model_id, latent_space=space.latent_space, fps=goal.fps,
                      height=height * spatial, width=width * spatial, layout=space.layout)
    return clip.with_step("import", {"format": "raw", "source": source, "tensor": name, "layout": given,
                                     "shape": original_shape, "dtype": str(tensor.dtype).removeprefix("torch."),
                                     "model": goal.model_id})


def read_raw(path: str | os.PathLike[str], *, layout: str, model: str | LatentTarget, tensor: str | None = None) -> LatentClip:
    """Read raw latents from a safetensors file into a clip.

    Args:
        path: the file, or ``-`` for stdin.
        layout: its tensor's axes, e.g. ``ncthw`` (see ``parse_layout``).
        model: the model whose latent space the numbers are in (alias, hub id, folder, tiny model),
            or its ``target``.
        tensor: the tensor's name, where the file holds several.

    Example: the real Wan 2.1 latents of the shared test data,
    ``read_raw("../shared/data/wan21_latents.safetensors", layout="ncthw", model="wan21-i2v-480p")``:
    16 latent frames (61 pixel frames) of 512x320 at 16 fps.
    """
    checked, goal = parse_layout(layout), model if isinstance(model, LatentTarget) else target(model)
    name, chosen = pick_tensor(read_tensors(path), tensor, source=_source(path))
    return to_clip(chosen, checked, goal, source=_source(path), name=name)


def _source(path: str | os.PathLike[str]) -> str:
    return "stdin" if str(path) == STDIO else str(path)
