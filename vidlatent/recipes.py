"""--recipe FILE.toml: a model, its component files, LoRAs and knobs, written down once.

A recipe is a flat TOML table whose keys are the long flags of a sampling command without their
dashes (``model``, ``transformer``, ``transformer-2``, ``lora``, ``quantize``, ``steps``,
``guidance``, ``sampler``, ...; ``_`` and ``-`` alike). Its values become the command's
defaults, so a flag given on the command line (or a ``VIDLATENT_`` variable) wins, and every
value passes the same checks as the flag's. Relative paths are read from the recipe's folder.
A key that is no recipe key is refused in one line. Examples: ``examples/recipes/``.

Torch-free: read while the command line is parsed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vidlatent.errors import UsageError
from vidlatent.knobs import KNOBS

# What a recipe may say: the model and how it loads, its component files, LoRAs and the knobs
# (the command's own inputs, outputs and seed are not a recipe's).
LOADING_KEYS = ("model", "dtype", "offload", "transformer", "transformer_2", "lora", "lora_partial", "quantize", "cache",
                "attention", "compile", "vae_tiling")
RECIPE_KEYS = (*LOADING_KEYS, *(name for name, declaration in KNOBS.items() if declaration.flag))
PATH_KEYS = ("transformer", "transformer_2", "lora")
MULTIPLE_KEYS = ("lora",)  # options given more than once: one value or a list
# A recipe key -> the command's parameter, where they differ.
PARAMETERS = {"compile": "compile_denoiser"}


def read_recipe(path: str, parameters: set[str] | None = None) -> dict[str, Any]:
    """The recipe at ``path`` as a command's ``default_map`` (parameter name -> value).

    Args:
        path: the TOML file.
        parameters: the command's parameter names; a recipe key the command does not take is
            refused as an unknown one is (None: any recipe key).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    file = Path(path).expanduser()
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--recipe {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"--recipe {path}: not a TOML recipe ({error})") from error
    allowed = [key for key in RECIPE_KEYS if parameters is None or PARAMETERS.get(key, key) in parameters]
    values: dict[str, Any] = {}
    for raw, value in table.items():
        key = raw.replace("-", "_")
        if key not in allowed:
            raise UsageError(f"--recipe {path}: {raw!r} is no recipe key; a recipe takes "
                             f"{', '.join(name.replace('_', '-') for name in allowed)}")
        if isinstance(value, dict):
            raise UsageError(f"--recipe {path}: {raw!r} is a table; give it a value (recipes are flat)")
        if key in MULTIPLE_KEYS and not isinstance(value, list):
            value = [value]
        if key in PATH_KEYS:
            value = [_beside(file, each) for each in value] if isinstance(value, list) else _beside(file, value)
        values[PARAMETERS.get(key, key)] = value
    return values


def _beside(recipe: Path, value: Any) -> Any:
    """A relative path (or LoRA PATH[:SCALE[:EXPERT]]) read from the recipe's folder."""
    if not isinstance(value, str):
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(recipe.parent.resolve() / value)
