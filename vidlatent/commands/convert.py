"""vidlatent convert: a latent clip into another latent file layout (ComfyUI's .latent), or raw
latents (a bare tensor) into a clip."""

from __future__ import annotations

import click

from vidlatent.commands.options import common_options, output_option
from vidlatent.commands.outputs import output_entry, prepare_output
from vidlatent.commands.reporting import Reporter, State, pass_state

FORMATS = ("vidlatent", "comfyui")


@click.command(
    epilog="""\b
Examples:
  vidlatent convert clip.safetensors -o clip.latent
  vidlatent convert ComfyUI/output/latents/clip_00001_.latent -o clip.safetensors
  vidlatent convert raw.safetensors --layout ncthw --model wan21-i2v-480p -o clip.safetensors
  vidlatent generate photo.png --model tiny-random -o - | vidlatent convert - --to comfyui -o clip.latent
"""
)
@click.argument("clip", type=click.Path(allow_dash=True))
@output_option("File to write (or - for stdout). Its suffix picks the layout: .latent is ComfyUI's, .safetensors vidlatent's.")
@click.option("--to", "file_format", type=click.Choice(FORMATS), help="The layout to write, whatever the suffix.")
@click.option("--layout", "axes", metavar="AXES",
              help="CLIP is raw latents (a safetensors file without vidlatent's metadata, e.g. saved from a diffusers "
                   "pipeline's output_type=\"latent\"): its tensor's axes in order, one letter each (n batch of 1, c, t, "
                   "h, w), e.g. ncthw (diffusers, ComfyUI video), tchw (vidlatent), cthw, nthwc. Needs --model.")
@click.option("--model", metavar="ID|PATH",
              help="With --layout: the model whose latent space the raw latents are in (alias, hub id, diffusers folder or "
                   "tiny model); it sets the layout, frame rate and size. Nothing is loaded or downloaded for a known alias.")
@click.option("--tensor", metavar="NAME", help="With --layout: the tensor holding the latents, where the file has several.")
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, file_format: str | None, axes: str | None, model: str | None,
            tensor: str | None) -> None:
    """Convert CLIP between vidlatent's latent file and ComfyUI's .latent, or raw latents into a clip.

    A ComfyUI .latent holds the latents unscaled (`latent_tensor`, ComfyUI multiplies by the
    VAE's scaling factor itself) with an empty `latent_format_version_0` marker; vidlatent
    divides by the clip's scaling factor when writing one and multiplies when reading one.
    A .latent from ComfyUI is read as Stable Video Diffusion latents (a note says so). Any
    command that reads latents also reads .latent files directly.

    With --layout, CLIP is raw latents as the model's pipeline sees them (Wan: normalised by
    its VAE's latents_mean/std): they are kept as they are, frames first, in float32, with the
    model's latent layout, its frame rate, and the latents' size times the VAE's compression.
    The latent space is the model's VAE with an unknown fingerprint, so any model with that VAE
    decodes the clip.
    """
    from vidlatent import latentfile
    from vidlatent.errors import UsageError

    report = Reporter(state, "convert")
    if output is None:
        raise UsageError("give -o: a .latent (ComfyUI) or .safetensors (vidlatent) file, or - with --to")
    if not latentfile.is_latent_path(output):
        raise UsageError(f"-o {output}: convert writes latents; name it *.latent (ComfyUI) or *.safetensors, or use -")
    if axes is None:
        for flag, value in (("--model", model), ("--tensor", tensor)):
            if value is not None:
                raise UsageError(f"{flag} applies to raw latents: give --layout too (the tensor's axes, e.g. ncthw)")
    elif model is None:
        raise UsageError("--layout: raw latents need --model, the model whose latent space they are in (e.g. --model wan21-i2v-480p)")
    if axes is None:
        prepare_output(output, [clip])
        source = latentfile.read(clip)
    else:
        from vidlatent import raw_latents

        layout, goal = raw_latents.parse_layout(axes), raw_latents.target(model)  # checked before anything is written
        prepare_output(output, [clip])
        source = raw_latents.read_raw(clip, layout=layout, model=goal, tensor=tensor)
    comfyui = None if file_format is None else file_format == "comfyui"
    converted = source.with_step("convert", {"to": file_format or ("comfyui" if output.lower().endswith(".latent") else "vidlatent")})
    latentfile.write(converted, output, comfyui=comfyui)
    report.note(f"wrote {output} ({converted.pixel_frames} frames)")
    report.summary([output_entry(output, converted)], stdout_busy=output == "-", model=converted.model)
