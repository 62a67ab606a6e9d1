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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from vidlatent.errors import LatentFileError, ModelError

if TYPE_CHECKING:
    from vidlatent.families.base import ComfyAssumption, Family, ModelSpec

MODULES = {
    "svd": "vidlatent.families.svd",
    "wan": "vidlatent.families.wan",
    "ltx": "vidlatent.families.ltx",
    "wan-vace": "vidlatent.families.wan_vace",  # writes Wan latents: its FAMILY's name is "wan"
    "skyreels": "vidlatent.families.skyreels",
    "ltx2": "vidlatent.families.ltx2",
}
FAMILY_NAMES = tuple(MODULES)
DEFAULT_FAMILY = "svd"  # the family of the model vidlatent runs without --model


def family(name: str) -> Family:
    """The family registered as ``name`` (svd, wan, ltx, wan-vace, skyreels, ltx2); a latent file's
    family name (svd, wan, ltx, skyreels, ltx2) finds the family that made its latents."""
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


def declared_specs(each: Family) -> list[ModelSpec]:
    """The specs of the checkpoints ``each`` knows by alias (``known_spec``; nothing loads)."""
    return [spec for hub in each.aliases.values() if (spec := each.known_spec(hub)) is not None]


def per_family(fact: Callable[[Family, list[ModelSpec]], str]) -> str:
    """One fact of each family for --help, from what it declares: "SVD 64; Wan 16 or 32; LTX 32"
    (``fact`` gets the family and its checkpoints' specs; a family whose fact is "" is left out)."""
    return "; ".join(f"{each.short_title} {text}" for each in all_families() if (text := fact(each, declared_specs(each))))


def each_of(values: Iterable[Any]) -> str:
    """Distinct values in words, in order: "16 or 32"."""
    return " or ".join(dict.fromkeys(str(value) for value in values))


def able_models(can: Callable[[ModelSpec], bool], *, prefer: str | None = None) -> tuple[list[str], list[str]]:
    """The models that can do what ``can`` asks of a spec, judged by the specs the families declare
    (``known_spec`` of their aliases' checkpoints, ``tiny_spec`` of their tiny models: nothing
    loads): the first such alias of each family, and every such tiny model; the family ``prefer``
    first."""
    aliases: list[str] = []
    tiny: list[str] = []
    for each in sorted(all_families(), key=lambda each: each.name != prefer):
        able = [alias for alias, hub in each.aliases.items() if (spec := each.known_spec(hub)) is not None and can(spec)]
        aliases += able[:1]
        tiny += [name for name in each.tiny if can(each.tiny_spec(name))]
    return aliases, tiny


def able_models_in_words(can: Callable[[ModelSpec], bool], *, prefer: str | None = None) -> str:
    """For a refusal's hint: "--model wan21-flf2v or ltx-0.9.7-dev (offline: --model
    tiny-random-wan-flf2v or tiny-random-ltx)"; "" when no model can."""
    aliases, tiny = able_models(can, prefer=prefer)
    online = f"--model {' or '.join(aliases)}" if aliases else ""
    offline = f"offline: --model {' or '.join(tiny)}" if tiny else ""
    return f"{online} ({offline})" if online and offline else online or offline


def tiny_model_like(spec: ModelSpec | None) -> str:
    """The tiny model that can do what the model of ``spec`` does: of its family, conditioned as
    it is (an image, a last frame; one that takes an image or not stands in for either), the most
    alike first; else its family's first, else the default family's (``spec`` None)."""
    from vidlatent.families.base import IMAGE_OPTIONAL

    if spec is not None:
        candidates = [(name, each.tiny_spec(name)) for each in all_families() if each.name == spec.family for name in each.tiny]
        able = [(name, tiny) for name, tiny in candidates
                if tiny.image in (spec.image, IMAGE_OPTIONAL) and (tiny.last_image or not spec.last_image)]
        alike = sorted(able, key=lambda pair: (pair[1].image != spec.image, pair[1].last_image != spec.last_image,
                                               pair[1].experts != spec.experts))
        if alike or candidates:
            return (alike or candidates)[0][0]
    return next(iter(family(DEFAULT_FAMILY).tiny))


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
