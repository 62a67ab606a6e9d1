"""Model families: the one unit that plugs a kind of video model into every command.

One module per family (``svd``, ``wan``, ``ltx``, ``ltx2``), each defining ``FAMILY``, an instance of
``vidlatent.families.base.Family``. This registry finds a family by name, by a model folder's
``model_index.json``, by a pipeline object, or by a model name (alias, known hub id, tiny
random model), and names the default model. Adding a family is adding a module and a line to
``MODULES`` (docs/adding-a-family.md).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vidlatent.errors import LatentFileError, ModelError

if TYPE_CHECKING:
    from vidlatent.families.base import ComfyAssumption, Family, ModelSpec

MODULES = {
    "svd": "vidlatent.families.svd",
    "wan": "vidlatent.families.wan",
    "ltx": "vidlatent.families.ltx",
    "ltx2": "vidlatent.families.ltx2",
}
FAMILY_NAMES = tuple(MODULES)
DEFAULT_FAMILY = "svd"  # the family of the model vidlatent runs without --model


def family(name: str) -> Family:
    """The family called ``name`` (svd, wan, ltx, ltx2)."""
    return importlib.import_module(MODULES[name]).FAMILY  # type: ignore[no-any-return]


def all_families() -> list[Family]:
    return [family(name) for name in FAMILY_NAMES]


def aliases() -> dict[str, str]:
    """Every family's short model names: alias -> hub id."""
    return {alias: hub for each in all_families() for alias, hub in each.aliases.items()}


def default_model() -> str:
    """The model vidlatent runs without --model: the default family's."""
    model = family(DEFAULT_FAMILY).default_model
    assert model is not None, f"the default family {DEFAULT_FAMILY} names no default model"
    return model


def tiny_models() -> dict[str, Family]:
    """The tiny random models, by name."""
    return {name: each for each in all_families() for name in each.tiny}


def tiny_builders() -> dict[str, tuple[int, Callable[[], Any]]]:
    """Every tiny random pipeline a family builds (models, and latent upsamplers), by name: its
    version and its builder."""
    builders: dict[str, tuple[int, Callable[[], Any]]] = {}
    for each in all_families():
        for name, version in each.tiny.items():
            builders[name] = (version, lambda each=each, name=name: each.build_tiny(name))
        if each.upsampler is not None:
            for name, version in each.upsampler.tiny.items():
                builders[name] = (version, lambda upsampler=each.upsampler, name=name: upsampler.build_tiny(name))
    return builders


def for_pipeline_class(class_name: str) -> Family | None:
    for each in all_families():
        if class_name in each.pipeline_classes:
            return each
    return None


def for_pipeline(pipeline: Any) -> Family:
    """The family of a loaded diffusers pipeline."""
    found = for_pipeline_class(type(pipeline).__name__)
    if found is None:
        raise ValueError(f"{type(pipeline).__name__} belongs to no vidlatent model family")
    return found


def known_spec(hub_id: str) -> tuple[Family, ModelSpec] | None:
    """The family and spec of a checkpoint some family knows by hub id (no folder needed)."""
    for each in all_families():
        spec = each.known_spec(hub_id)
        if spec is not None:
            return each, spec
    return None


def for_vae(vae: Any) -> Family | None:
    name = type(vae).__name__
    return next((each for each in all_families() if each.vae_class == name), None)


def read_model_index(folder: Path, model: str) -> dict[str, Any]:
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"--model {model}: model_index.json cannot be read ({error})") from error
    if not isinstance(index, dict):
        raise ModelError(f"--model {model}: model_index.json is not a JSON object")
    return index


def for_folder(folder: Path, model: str) -> tuple[Family, dict[str, Any]]:
    """The family that runs the diffusers folder ``folder`` and its model_index.json, or a
    ModelError naming the class found and the classes vidlatent runs."""
    index = read_model_index(folder, model)
    name = index.get("_class_name")
    found = for_pipeline_class(str(name))
    if found is None:
        known = "; ".join(f"a {each.title} model ({', '.join(each.pipeline_classes)})" for each in all_families())
        raise ModelError(f"--model {model}: is a {name}, not {known}: vidlatent runs these families")
    return found, index


def comfyui_assumption(ndim: int, channels: int, source: str) -> ComfyAssumption:
    """What a ComfyUI latent tensor of ``ndim`` dimensions and ``channels`` channels is read as."""
    for each in all_families():
        if (ndim, channels) in each.comfyui:
            return each.comfyui[(ndim, channels)]
    known = ", ".join(f"{n}-d with {c} channels ({each.title})" for each in all_families() for n, c in each.comfyui)
    raise LatentFileError(f"{source}: a ComfyUI latent of {ndim} dimensions with {channels} channels; vidlatent reads {known}")
