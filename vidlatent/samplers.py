"""--sampler and --shift: the scheduler a flow-matching pipeline samples with, for one call.

The pipeline's own scheduler (its class and ``flow_shift``) is the default; a knob that is given
makes a scheduler of the named class from the pipeline's scheduler config with the shift set
(``Class.from_config(config, flow_shift=S)``, as a diffusers script does it), which the pipeline
uses within the block and gives back after. The families that take these knobs declare them
(``Family.scheduler_knobs``). Torch-free at import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# --sampler's names -> the diffusers scheduler classes (flow-matching configurations).
SAMPLERS = {"unipc": "UniPCMultistepScheduler", "dpm++": "DPMSolverMultistepScheduler",
            "euler": "FlowMatchEulerDiscreteScheduler"}
# Where a class keeps the shift in its config (the multistep solvers: flow_shift).
_SHIFT_KEYS = {"FlowMatchEulerDiscreteScheduler": "shift"}


def _shift_key(class_name: str) -> str:
    return _SHIFT_KEYS.get(class_name, "flow_shift")


def settings(scheduler: Any) -> dict[str, Any]:
    """The sampler (by its --sampler name, or the class name of another) and shift of ``scheduler``."""
    names = {class_name: name for name, class_name in SAMPLERS.items()}
    cls = next((each for each in type(scheduler).__mro__ if each.__name__ in names), type(scheduler))
    shift = scheduler.config.get(_shift_key(cls.__name__))
    return {"sampler": names.get(cls.__name__, cls.__name__), "shift": float(shift) if shift is not None else None}


def scheduler_for(scheduler: Any, sampler: str | None, shift: float | None) -> Any:
    """A scheduler of the class ``sampler`` names (None: ``scheduler``'s) with ``shift`` (None:
    ``scheduler``'s), made from ``scheduler``'s config; ``scheduler`` itself where it is that already."""
    import diffusers

    current = settings(scheduler)
    class_name = SAMPLERS[sampler] if sampler is not None else SAMPLERS.get(current["sampler"], current["sampler"])
    shift = shift if shift is not None else current["shift"]
    target = getattr(diffusers, class_name)
    if isinstance(scheduler, target) and shift == current["shift"]:
        return scheduler
    changes: dict[str, Any] = {_shift_key(class_name): shift}
    if class_name != "FlowMatchEulerDiscreteScheduler":  # the multistep solvers, in their flow-matching form
        changes |= {"prediction_type": "flow_prediction", "use_flow_sigmas": True}
    return target.from_config(scheduler.config, **changes)


@contextlib.contextmanager
def scheduled(pipeline: Any, sampler: str | None, shift: float | None) -> Iterator[None]:
    """Within the block, ``pipeline`` samples with ``scheduler_for(its scheduler, sampler, shift)``."""
    original = pipeline.scheduler
    if sampler is None and shift is None:
        yield
        return
    pipeline.scheduler = scheduler_for(original, sampler, shift)
    try:
        yield
    finally:
        pipeline.scheduler = original
