"""vidlatent convert: a latent clip into another latent file layout (ComfyUI's .latent)."""

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
  vidlatent generate photo.png --model tiny-random -o - | vidlatent convert - --to comfyui -o clip.latent
"""
)
@click.argument("clip", type=click.Path(allow_dash=True))
@output_option("File to write (or - for stdout). Its suffix picks the layout: .latent is ComfyUI's, .safetensors vidlatent's.")
@click.option("--to", "layout", type=click.Choice(FORMATS), help="The layout to write, whatever the suffix.")
@common_options
@pass_state
def command(state: State, clip: str, output: str | None, layout: str | None) -> None:
    """Convert CLIP between vidlatent's latent file and ComfyUI's .latent.

    A ComfyUI .latent holds the latents unscaled (`latent_tensor`, ComfyUI multiplies by the
    VAE's scaling factor itself) with an empty `latent_format_version_0` marker; vidlatent
    divides by the clip's scaling factor when writing one and multiplies when reading one.
    A .latent from ComfyUI is read as Stable Video Diffusion latents (a note says so). Any
    command that reads latents also reads .latent files directly.
    """
    from vidlatent import latentfile
    from vidlatent.errors import UsageError

    report = Reporter(state, "convert")
    if output is None:
        raise UsageError("give -o: a .latent (ComfyUI) or .safetensors (vidlatent) file, or - with --to")
    if not latentfile.is_latent_path(output):
        raise UsageError(f"-o {output}: convert writes latents; name it *.latent (ComfyUI) or *.safetensors, or use -")
    prepare_output(output, [clip])
    source = latentfile.read(clip)
    comfyui = None if layout is None else layout == "comfyui"
    converted = source.with_step("convert", {"to": layout or ("comfyui" if output.lower().endswith(".latent") else "vidlatent")})
    latentfile.write(converted, output, comfyui=comfyui)
    report.note(f"wrote {output} ({converted.pixel_frames} frames)")
    report.summary([output_entry(output, converted)], stdout_busy=output == "-", model=converted.model)
