"""Model loading for commands: the model's description for checks before loading, the sampling
pipeline with its memory switches, and the device of each process in a launch.

The loading itself is ``vidlatent.models``' (one loader); this adds what commands share around
it. Nothing here imports torch at import time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidlatent.errors import UsageError
from vidlatent.models import LoadOptions, ModelInfo, describe_checked

if TYPE_CHECKING:
    from vidlatent.commands.reporting import Reporter


@dataclass(frozen=True)
class LowMemory:
    """The memory switches of a sampling command, with --low-vram already expanded.

    ``forward_chunking`` is asked for explicitly (a model without it refuses) or by --low-vram
    (a model without it goes without, with a note).
    """

    offload_model: bool = False
    forward_chunking: bool = False
    decode_chunk: int | None = None
    low_vram: bool = False


def describe_model(load: LoadOptions) -> ModelInfo:
    """The family and spec of the model ``load`` names (configs only), for checks before loading;
    refuses acceleration flags the family cannot take (--cache on SVD, ...). Hand it to
    ``load_sampler`` (``info=``): the model is described once."""
    return describe_checked(load)


def load_sampler(load: LoadOptions, memory: LowMemory, report: Reporter, *, image: bool = True, last_image: bool = False,
                 info: ModelInfo | None = None) -> Any:
    """Load the pipeline for a sampling command, with its memory switches applied.

    Args:
        image: load the pipeline that takes a conditioning image (else text only).
        last_image: the one that takes a last frame too (keyframes).
        info: the model's ``describe_model``, where the command has it.
    """
    from vidlatent.models import load_pipeline

    info = info or describe_model(load)
    family = info.family
    chunking = memory.forward_chunking or (memory.low_vram and family.forward_chunking is not None)
    if memory.forward_chunking and family.forward_chunking is None:
        raise UsageError(f"--forward-chunking: {family.title}'s denoiser has no chunked feed-forward in diffusers; leave it out")
    if memory.low_vram and family.forward_chunking is None:
        report.note(f"--low-vram: {family.title}'s denoiser has no chunked feed-forward; offloading and decoding in chunks only")
    if memory.offload_model:
        load = dataclasses.replace(load, offload="model")
    with report.timed("load"):
        model = load_pipeline(load, note=report.note, image=image, last_image=last_image, info=info)
    if chunking:
        getattr(model.pipeline, model.family.forward_chunking).enable_forward_chunking()
    return model


def join_launch(load: LoadOptions, ranks: Any) -> LoadOptions:
    """In a launch of several processes (torchrun): join its process group, and let --device auto
    put each process on its own GPU (cuda:LOCAL_RANK), else the CPU."""
    from vidlatent import distributed

    if not ranks.parallel:
        return load
    distributed.start()
    return dataclasses.replace(load, device=distributed.device_name(ranks)) if load.device == "auto" else load
