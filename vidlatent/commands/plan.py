"""vidlatent plan: what a run needs, per stage, before anything loads; and with --vram what makes it fit."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from vidlatent.commands.options import sampler_options, vram_option
from vidlatent.commands.reporting import State, print_json, text_console
from vidlatent.errors import UsageError

if TYPE_CHECKING:
    from vidlatent.planning import Fit, Plan


@click.command(
    epilog="""\b
Examples:
  vidlatent plan --model wan21-i2v-480p --size 832x480 --frames 81
  vidlatent plan --model tiny-random-wan --size 64x64 --frames 9 --json
  vidlatent plan --model wan22-t2v-a14b --size 1280x720 --vram 24G
  vidlatent plan --model ltx-0.9.7-dev --size 1216x704 --json | jq .peak_gpu_bytes
"""
)
@click.option("--size", metavar="WxH", help="Pixel size sampled. Default: the model's native size.")
@click.option("--image/--no-image", "with_image", default=None,
              help="Plan an image-conditioned run (its image encoder loaded) or a text-only one. Default: with an image "
                   "where the model takes one.")
@vram_option
@sampler_options()
def command(state: State, size: str | None, with_image: bool | None, vram: str | None, knobs: Any, seed: int | None,
            memory: Any, load: Any, model_given: bool) -> None:
    """Estimate, from the model's architecture built on the meta device (no weights read), what a
    generate run with the same flags needs: the weights of each component at its dtype (fp8 with
    --quantize, single files, LoRAs), the denoiser's tokens and activations, the VAE decode's
    working memory per chunk or tile, and the peak GPU and host memory of each stage (load,
    prompt, denoise, decode) under --offload; and the time-dominant quantity, denoiser calls x
    tokens^2. With --vram SIZE (or auto: the device's free memory), the cheapest combination of
    offload, fp8, VAE tiling and decode chunk that fits, and why; a run that cannot fit is
    refused (exit 2), saying what is short. `generate --plan` prints the same and loads nothing.
    """
    from vidlatent import media
    from vidlatent.commands.loading import describe_model
    from vidlatent.families.base import IMAGE_NONE, IMAGE_REQUIRED
    from vidlatent.knobs import check_size

    info = describe_model(load)
    spec = info.spec
    image = spec.image != IMAGE_NONE if with_image is None else with_image
    if image and spec.image == IMAGE_NONE:
        raise UsageError(f"--image: {spec.title} is text to video and takes no image")
    if not image and spec.image == IMAGE_REQUIRED:
        raise UsageError(f"--no-image: {spec.title} animates an image; leave --no-image out")
    knobs.check_for(spec)
    pixels = media.parse_dimensions(size) if size else spec.native_size
    check_size(pixels, spec)
    request = make_request(load, memory, knobs, pixels, image=image, family=info.family)
    show(state, request, info, vram)


def make_request(load: Any, memory: Any, knobs: Any, size: tuple[int, int], *, image: bool, family: Any) -> Any:
    """The planning request of a sampling command's flags."""
    from vidlatent.planning import Request

    guidance = getattr(knobs, family.guidance_knob) if family.guidance_knob else None
    if memory.offload_model:
        import dataclasses

        load = dataclasses.replace(load, offload="model")
    return Request(load=load, size=size, frames=knobs.frames, steps=knobs.steps, guidance=guidance,
                   decode_chunk=memory.decode_chunk, image=image)


def show(state: State, request: Any, info: Any, vram: str | None) -> None:
    """Print the plan of ``request`` (fitted to --vram where given): a table, or one JSON object."""
    from vidlatent import planning

    fitted = planning.fit(request, planning.parse_memory(vram), info, given=vram) if vram is not None else None
    estimate = fitted.plan if fitted is not None else planning.plan(request, info)
    if state.json:
        from vidlatent import __version__

        summary = {"command": "plan", "vidlatent": __version__, "status": "ok", **estimate.as_dict()}
        if fitted is not None:
            summary["fit"] = fit_record(fitted)
        print_json(json.dumps(summary, indent=2))
        return
    print_plan(estimate, fitted)


def planned_flags(request: Any, info: Any, vram: str, memory: Any, note: Any) -> tuple[Any, Any]:
    """--vram on a sampling command: the load options and memory switches of the cheapest plan
    that fits (DoesNotFit, before loading, when none does), with a note saying why."""
    import dataclasses

    from vidlatent import planning

    fitted = planning.fit(request, planning.parse_memory(vram), info, given=vram)
    note(f"--vram: {fitted.reason}")
    acceleration = dataclasses.replace(request.load.acceleration, quantize=fitted.quantize, vae_tiling=fitted.vae_tiling)
    load = dataclasses.replace(request.load, offload=fitted.offload, acceleration=acceleration)
    return load, dataclasses.replace(memory, decode_chunk=fitted.decode_chunk, offload_model=False)


def fit_record(fitted: Fit) -> dict[str, Any]:
    return {"offload": fitted.offload, "quantize": fitted.quantize, "vae_tiling": fitted.vae_tiling,
            "decode_chunk": fitted.decode_chunk, "reason": fitted.reason}


def print_plan(estimate: Plan, fitted: Fit | None = None) -> None:
    from rich.table import Table

    from vidlatent.planning import gib

    console = text_console()
    console.print(f"{estimate.title} ({estimate.model}) on {estimate.device}, {estimate.dtype}: "
                  f"{estimate.size[0]}x{estimate.size[1]}, {estimate.frames} frames, {estimate.steps} steps; "
                  f"offload {estimate.offload}, quantize {estimate.quantize or 'none'}, "
                  f"VAE tiling {'on' if estimate.vae_tiling else 'off'}, decode chunk "
                  f"{estimate.decode_chunk or 'not used (the decoder steps one latent frame at a time)'}", highlight=False)
    weights = Table(title="weights", title_justify="left", box=None)
    weights.add_column("component")
    weights.add_column("bytes", justify="right")
    for name, count in estimate.weights.items():
        weights.add_row(name, gib(count))
    weights.add_row("total", gib(sum(estimate.weights.values())))
    console.print(weights)
    console.print(f"denoiser: latents {'x'.join(map(str, estimate.latent))} (frames x height x width), {estimate.tokens} "
                  f"tokens, {estimate.heads} heads, {estimate.denoiser_calls} calls; calls x tokens^2 = {estimate.work:.3g}"
                  f"{' (attention scores materialised on this device)' if estimate.attention_materialised else ''}",
                  highlight=False)
    stages = Table(title="peak memory per stage", title_justify="left", box=None)
    for column in ("stage", "GPU", "host", "what"):
        stages.add_column(column, justify="right" if column in ("GPU", "host") else "left")
    for stage in estimate.stages:
        stages.add_row(stage.name, gib(stage.gpu) if estimate.on_gpu else "-", gib(stage.host), stage.what)
    console.print(stages)
    console.print(f"peak: {gib(estimate.peak_gpu)} GPU, {gib(estimate.peak_host)} host" if estimate.on_gpu
                  else f"peak: {gib(estimate.peak_host)} host", highlight=False)
    for note in estimate.notes:
        console.print(f"note: {note}", highlight=False)
    if fitted is not None:
        console.print(f"--vram: {fitted.reason}", highlight=False)
