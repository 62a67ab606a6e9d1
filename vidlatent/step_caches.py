"""--cache METHOD[:SETTING=VALUE,...]: diffusers' step caches on the transformer families.

Three of diffusers' hooks (``diffusers.hooks``), each turned on with ``CacheMixin.enable_cache``:

- ``first-block`` (``FirstBlockCacheConfig``): when the first block's output barely changed since
  the previous step, the other blocks are skipped and their last residual reused.
- ``taylorseer`` (``TaylorSeerCacheConfig``): the attention layers run fully every
  ``cache_interval`` steps; in between their outputs are predicted from a Taylor expansion over
  the steps that ran.
- ``mag`` (``MagCacheConfig``): MagCache skips all blocks while the error accumulated from the
  model's *magnitude ratios* (how much the residual's norm changes from step to step, measured
  once per model) stays under ``threshold``. The ratios are those published for the model
  (``Family.mag_ratios``), or measured by ``vidlatent calibrate-cache`` and given as
  ``mag:ratios=FILE``.

Settings take diffusers' names and defaults; ``METHOD:NUMBER`` sets the threshold. Whether a
run can take a cache is checked before loading (the family, the block count, the ratios), and
what each skipped is counted from the layers themselves (``CacheCounter``) for the history.

Torch-free at import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError

if TYPE_CHECKING:
    from vidlatent.families.base import Family, ModelSpec

RATIOS_FORMAT = "vidlatent-mag-ratios"  # the "format" of a calibrate-cache file
RATIOS_VERSION = 1


def _number(low: float = 0.0, high: float = math.inf) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"a number from {low:g}{f' to {high:g}' if high < math.inf else ' up'}")
        return value

    return parse


def _count(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise ValueError(f"a whole number, {low} or more")
        return value

    return parse


def _switch(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def _file(text: str) -> str:
    return str(Path(text).expanduser().resolve())


@dataclass(frozen=True)
class CacheMethod:
    """One --cache METHOD: diffusers' config class, the settings vidlatent passes to it (with
    diffusers' defaults, for help and the history) and the fewest transformer blocks it can hook."""

    name: str
    config: str
    settings: dict[str, Callable[[str], Any]]
    defaults: dict[str, Any]
    blocks: int
    what: str


METHODS: dict[str, CacheMethod] = {method.name: method for method in (
    CacheMethod("first-block", "FirstBlockCacheConfig", {"threshold": _number()}, {"threshold": 0.05}, blocks=2,
                what="skip the other blocks while the first block's output barely changes"),
    CacheMethod("taylorseer", "TaylorSeerCacheConfig",
                {"cache_interval": _count(1), "disable_cache_before_step": _count(0), "disable_cache_after_step": _count(0),
                 "max_order": _count(0), "use_lite_mode": _switch},
                {"cache_interval": 5, "disable_cache_before_step": 3, "disable_cache_after_step": None, "max_order": 1,
                 "use_lite_mode": False}, blocks=1,
                what="predict the attention outputs between full steps from a Taylor expansion"),
    CacheMethod("mag", "MagCacheConfig",
                {"threshold": _number(), "max_skip_steps": _count(1), "retention_ratio": _number(0, 1), "ratios": _file},
                {"threshold": 0.06, "max_skip_steps": 3, "retention_ratio": 0.2}, blocks=1,
                what="skip all blocks while the error predicted from the model's magnitude ratios stays small"),
)}
CACHE_METHODS = tuple(METHODS)
DEFAULT_CACHE_THRESHOLD = METHODS["first-block"].defaults["threshold"]


@dataclass(frozen=True)
class CacheChoice:
    """--cache METHOD[:SETTING=VALUE,...]: the method and the settings given (diffusers' names;
    the rest take diffusers' defaults). ``threshold`` is first-block's and mag's."""

    method: str = "first-block"
    threshold: float | None = DEFAULT_CACHE_THRESHOLD
    settings: tuple[tuple[str, Any], ...] = ()
    ratios: tuple[float, ...] | None = None  # mag: read from ratios=FILE

    def given(self) -> dict[str, Any]:
        """The settings for diffusers' config, threshold included."""
        return {**({"threshold": self.threshold} if self.threshold is not None else {}),
                **{name: value for name, value in self.settings if name != "ratios"}}

    def __str__(self) -> str:
        settings = [f"{name}={value}" for name, value in (("threshold", self.threshold), *self.settings) if value is not None]
        return f"{self.method}:{','.join(settings)}" if settings else self.method


def parse_cache(text: str) -> CacheChoice:
    """``METHOD``, ``METHOD:NUMBER`` (the threshold) or ``METHOD:SETTING=VALUE,...`` as a
    CacheChoice; a mag ratios=FILE is read here. UsageError otherwise."""
    name, separator, rest = text.partition(":")
    method = METHODS.get(name)
    if method is None:
        raise UsageError(f"--cache {text!r}: expected one of {', '.join(CACHE_METHODS)}, optionally with "
                         "settings: METHOD:SETTING=VALUE,... (e.g. first-block:0.1, taylorseer:cache_interval=3)")
    values: dict[str, Any] = {}
    items = [item for item in rest.split(",") if item] if separator else []
    for item in items:
        setting, equals, value = item.partition("=")
        if not equals and "threshold" in method.settings and len(items) == 1:
            setting, value = "threshold", item
        parse = method.settings.get(setting)
        if parse is None:
            raise UsageError(f"--cache {text}: {name} has no setting {setting!r}; it takes {', '.join(method.settings)}")
        try:
            values[setting] = parse(value)
        except ValueError as error:
            expected = str(error) if "number" in str(error) or "true" in str(error) else "a number"
            raise UsageError(f"--cache {text}: {setting} must be {expected} (got {value!r})") from None
    threshold = values.pop("threshold", method.defaults.get("threshold"))
    ratios = read_mag_ratios(values["ratios"], flag=f"--cache {text}") if "ratios" in values else None
    return CacheChoice(name, threshold, tuple(values.items()), ratios)


# --- magnitude ratios (MagCache) -----------------------------------------------------------------


def read_mag_ratios(path: str, *, flag: str = "--cache") -> tuple[float, ...]:
    """The ratios of a ``vidlatent calibrate-cache`` file (JSON), checked."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"{flag}: {path}: no such file; make one with vidlatent calibrate-cache")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"{flag}: {path}: not a ratios file of vidlatent calibrate-cache ({error})") from None
    ratios = data.get("ratios") if isinstance(data, dict) and data.get("format") == RATIOS_FORMAT else None
    if (not isinstance(ratios, list) or len(ratios) < 2
            or not all(isinstance(value, (int, float)) and math.isfinite(value) and value > 0 for value in ratios)):
        raise UsageError(f"{flag}: {path}: not a ratios file of vidlatent calibrate-cache (a \"ratios\" list of "
                         "positive numbers, one per step)")
    return tuple(float(value) for value in ratios)


def ratios_document(ratios: list[float], by_call: dict[str, list[float]], *, model: str, steps: int) -> dict[str, Any]:
    """What ``vidlatent calibrate-cache`` writes: the ratios (the mean over the denoiser's calls
    per step, e.g. conditional and unconditional) and each call's own."""
    return {"format": RATIOS_FORMAT, "version": RATIOS_VERSION, "model": model, "steps": steps,
            "ratios": [round(value, 5) for value in ratios],
            "calls": {name: [round(value, 5) for value in values] for name, values in by_call.items()}}


def mag_ratios(choice: CacheChoice, family: Family, model_id: str) -> tuple[tuple[float, ...] | None, str]:
    """The ratios a mag cache runs with and where they come from: ratios=FILE, else those
    published for the model; (None, "") where there are none."""
    if choice.ratios is not None:
        return choice.ratios, dict(choice.settings).get("ratios", "given")
    published = family.mag_ratios(model_id)
    return (published, f"published for {model_id}") if published is not None else (None, "")


def check_cache(choice: CacheChoice, family: Family, spec: ModelSpec, model_id: str, folder: Path | None, *,
                calibrate: bool = False) -> None:
    """Refuse, before loading, a cache the model cannot take (UsageError, one line); ``calibrate``:
    for measuring mag's ratios (which it then needs none of)."""
    if not family.supports_cache:
        if calibrate:
            from vidlatent import families

            cached = " or ".join(each.title for each in families.all_families() if each.supports_cache)
            raise UsageError(f"--model {model_id}: {family.title}'s denoiser has no step cache in diffusers (CacheMixin), "
                             f"so there is nothing to calibrate; give a {cached} model")
        raise UsageError(f"--cache: {family.title}'s denoiser has no step cache in diffusers (CacheMixin); leave it out")
    method = METHODS[choice.method]
    blocks = family.denoiser_blocks(folder)
    if blocks is not None and blocks < method.blocks:
        others = [name for name, each in METHODS.items() if each.blocks <= blocks]
        raise UsageError(f"--cache {choice.method}: it needs a denoiser of {method.blocks} or more transformer blocks "
                         f"and {spec.title} ({model_id}) has {blocks}; use {' or '.join(others)}")
    if choice.method == "mag":
        if spec.experts > 1:
            raise UsageError(f"--cache mag: {spec.title} switches between two experts in one run, and diffusers' MagCache "
                             "counts each expert's steps from 0; use first-block or taylorseer")
        if not calibrate and mag_ratios(choice, family, model_id)[0] is None:
            raise UsageError(f"--cache mag: no magnitude ratios are published for {model_id}; measure them with "
                             "vidlatent calibrate-cache --model ... -o ratios.json and give --cache mag:ratios=ratios.json")


# --- applying them -------------------------------------------------------------------------------


@dataclass
class StepCache:
    """The cache of one loaded pipeline: the choice, the ratios it runs with, the counter."""

    choice: CacheChoice
    ratios: tuple[float, ...] | None = None
    ratios_source: str = ""
    counter: CacheCounter = field(default_factory=lambda: CacheCounter())

    def record(self) -> dict[str, Any]:
        """The history entry: the method, its settings and what it skipped since the last record."""
        record: dict[str, Any] = {"method": self.choice.method, **self.choice.given()}
        if self.ratios is not None:
            record["ratios"] = {"source": self.ratios_source, "values": list(self.ratios)}
        return {**record, **self.counter.take()}


def enable(pipeline: Any, models: dict[str, Any], choice: CacheChoice, family: Family, model_id: str) -> StepCache:
    """Turn ``choice`` on in each denoiser of ``models`` (before placement) and watch what it skips."""
    cache = StepCache(choice)
    if choice.method == "mag":
        cache.ratios, cache.ratios_source = mag_ratios(choice, family, model_id)
    for model in models.values():
        config = diffusers_config(choice, cache.ratios, family)
        model.enable_cache(config)
        if choice.method == "mag":
            model.register_forward_pre_hook(_fit_ratios_to_the_run(pipeline, config, cache.ratios))
        cache.counter.watch(model, watched_module(model, choice.method))
    return cache


def diffusers_config(choice: CacheChoice, ratios: tuple[float, ...] | None, family: Family, *,
                     calibrate: bool = False) -> Any:
    """diffusers' config object for ``choice`` (mag: with ``ratios``, or calibrating)."""
    import diffusers.hooks

    config_class = getattr(diffusers.hooks, METHODS[choice.method].config)
    if choice.method == "taylorseer" and not choice.given().get("use_lite_mode"):
        return config_class(cache_identifiers=list(family.taylorseer_modules), **choice.given())
    if choice.method != "mag":
        return config_class(**choice.given())
    if calibrate:
        return config_class(calibrate=True)
    return config_class(mag_ratios=list(ratios or ()), num_inference_steps=len(ratios or ()), **choice.given())


def _fit_ratios_to_the_run(pipeline: Any, config: Any, ratios: tuple[float, ...] | None) -> Callable[..., None]:
    """A pre-hook on the denoiser that tells the MagCache config how many steps this pipeline call
    runs (the pipeline's ``num_timesteps``, set before its loop), so that diffusers interpolates
    the ratios to them: a config is made before the steps are known (and a command may sample
    several times with different steps)."""
    import torch
    from diffusers.hooks.mag_cache import nearest_interp

    source = torch.tensor(ratios) if ratios is not None else None

    def fit(module: Any, args: Any) -> None:
        steps = int(getattr(pipeline, "num_timesteps", 0) or 0)
        if steps and steps != config.num_inference_steps:
            config.num_inference_steps = steps
            if source is not None:
                config.mag_ratios = nearest_interp(source, steps)

    return fit


def _keep_ratios(hook: Any, measured: dict[str, list[float]]) -> Callable[..., None]:
    def keep(module: Any, args: Any) -> None:
        # diffusers empties its list after the last step (and prints it): keep the list itself,
        # per call of the step (its cache context: cond, uncond).
        manager = hook.state_manager
        measured[manager.context.name] = manager.get_state().calibration_ratios

    return keep


def calibrating(pipeline: Any, models: dict[str, Any], family: Family) -> Callable[[], tuple[list[float], dict[str, list[float]]]]:
    """Put diffusers' MagCache into calibration mode (nothing is skipped; each step's ratio is
    measured) on the denoisers; returns a function that gives, after one pipeline call, the mean
    ratio per step and each call's (conditional, unconditional) own."""
    from diffusers.hooks.mag_cache import _MAG_CACHE_BLOCK_HOOK

    measured: dict[str, list[float]] = {}
    for model in models.values():
        config = diffusers_config(CacheChoice("mag", None), None, family, calibrate=True)
        model.enable_cache(config)
        model.register_forward_pre_hook(_fit_ratios_to_the_run(pipeline, config, None))
        tail = watched_module(model, "mag")
        # Before the tail block runs, so that the last step's ratio lands in the list kept.
        tail.register_forward_pre_hook(_keep_ratios(tail._diffusers_hook.get_hook(_MAG_CACHE_BLOCK_HOOK), measured))

    def result() -> tuple[list[float], dict[str, list[float]]]:
        calls = {name: list(values) for name, values in measured.items()}
        steps = min((len(values) for values in calls.values()), default=0)
        mean = [sum(values[index] for values in calls.values()) / len(calls) for index in range(steps)]
        return mean, calls

    return result


# --- what they skipped ---------------------------------------------------------------------------


def watched_module(denoiser: Any, method: str) -> Any:
    """The module whose layers run only when the cache computes: the tail block of first-block
    and mag (their hooks return the cached residual without calling it), the last hooked module
    with layers of taylorseer (its prediction replaces the module's call)."""
    from diffusers.hooks.first_block_cache import _FBC_BLOCK_HOOK
    from diffusers.hooks.mag_cache import _MAG_CACHE_BLOCK_HOOK
    from diffusers.hooks.taylorseer_cache import _TAYLORSEER_CACHE_HOOK

    name = {"first-block": _FBC_BLOCK_HOOK, "mag": _MAG_CACHE_BLOCK_HOOK, "taylorseer": _TAYLORSEER_CACHE_HOOK}[method]
    found = None
    for module in denoiser.modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook(name) if registry is not None else None
        if hook is None:
            continue
        if method == "taylorseer":
            found = module if any(True for _ in module.children()) else found
        elif getattr(hook, "is_tail", False):
            return module
    if found is None:
        raise RuntimeError(f"{type(denoiser).__name__}: the {method} cache found no transformer blocks to hook")
    return found


class CacheCounter:
    """Counts what a step cache skipped, by watching the layers themselves: a denoiser call whose
    watched module (``watched_module``) ran none of its layers was served from the cache. A
    pipeline step is skipped when every denoiser call in it (conditional and unconditional) was.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.skipped_calls = 0
        self.steps = 0
        self.skipped_steps = 0
        self._ran = False
        self._step_calls = 0
        self._step_skipped = 0
        self.handles: list[Any] = []

    def watch(self, denoiser: Any, watched: Any) -> None:
        self.handles.append(denoiser.register_forward_pre_hook(self._call_starts))
        for layer in watched.modules():  # every layer inside (a ModuleList itself is never called)
            if layer is not watched:
                self.handles.append(layer.register_forward_hook(self._layer_ran))
        self.handles.append(denoiser.register_forward_hook(self._call_ends))

    def _call_starts(self, module: Any, args: Any) -> None:
        self._ran = False

    def _layer_ran(self, module: Any, args: Any, output: Any) -> None:
        self._ran = True

    def _call_ends(self, module: Any, args: Any, output: Any) -> None:
        self.calls += 1
        self._step_calls += 1
        if not self._ran:
            self.skipped_calls += 1
            self._step_skipped += 1

    def end_step(self) -> None:
        """Called after each pipeline step (from the step callback)."""
        if self._step_calls:
            self.steps += 1
            self.skipped_steps += self._step_calls == self._step_skipped
        self._step_calls = self._step_skipped = 0

    def take(self) -> dict[str, int]:
        """The counts since the last take, and a fresh start."""
        counts = {"denoiser_calls": self.calls, "skipped_calls": self.skipped_calls, "steps": self.steps,
                  "skipped_steps": self.skipped_steps}
        self.calls = self.skipped_calls = self.steps = self.skipped_steps = 0
        return counts
