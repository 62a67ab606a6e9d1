"""vidlatent decode: a latent clip into a video."""

from __future__ import annotations

from typing import Any

import click

from vidlatent.commands import _batch
from vidlatent.commands.loading import describe_model, join_launch
from vidlatent.commands.options import (
    FiniteFloatRange, common_options, decode_options, model_options, output_option, vae_tiling_option,
)
from vidlatent.commands.outputs import check_video_sizes, expand_inputs, output_entry, plan_outputs, prepare_output
from vidlatent.commands.reporting import Reporter, State, pass_state


@click.command(
    epilog="""\b
Examples:
  vidlatent decode clip.safetensors -o clip.mp4
  vidlatent encode in.gif --model tiny-random -o - | vidlatent decode - -o out.mp4
  vidlatent decode ltx-clip.safetensors --decode-timestep 0.05 --decode-noise-scale 0.025 -o clip.mp4
  vidlatent decode ltx2-clip.safetensors -o clip.webm        # LTX-2: with its sound (Opus)
  vidlatent decode ltx2-clip.safetensors -o sound.wav        # the sound alone
"""
)
@click.argument("clips", nargs=-1, required=True, type=click.Path(allow_dash=True), metavar="CLIP...")
@output_option("Video to write: .mp4 (H.264; sound as AAC), .webm (sound as Opus), .gif, or a folder for PNG frames; "
               ".wav for a clip's sound alone. Default: CLIP's name with .mp4. With several clips: a folder, or a pattern "
               "with {stem}.")
@click.option("--chunk", type=click.IntRange(min=1), default=8, show_default=True,
              help="Latent frames per decoder call; bounds the memory (larger is smoother over time).")
@click.option("--fps", type=FiniteFloatRange(min=0, min_open=True), help="Frame rate of the video. Default: the clip's.")
@click.option("--no-audio", is_flag=True, help="Leave a clip's sound (LTX-2's) out of the video.")
@decode_options
@model_options
@vae_tiling_option
@common_options
@pass_state
def command(state: State, clips: tuple[str, ...], output: str | None, chunk: int, fps: float | None,  # type: ignore[no-untyped-def]
            no_audio: bool, decode_timestep: float | None, decode_noise_scale: float | None, load, model_given: bool) -> None:
    """Decode CLIP (a latent file, a folder of them, or - for stdin) into a video; several clips
    into one video each (shared among the processes of a torchrun launch).

    Without --model the clip's own model decodes it; a clip from another VAE is refused.
    Each decoded chunk is written as it comes, so memory does not grow with the length (LTX:
    each chunk is decoded with the latent frames around it that its non-causal decoder reaches).
    LTX's decoder is conditioned on a timestep: without --decode-timestep and
    --decode-noise-scale the clip's own recorded values are used, else 0.05 and 0.025.
    A clip with sound (LTX-2) gets it as the video's sound track (.mp4, .webm) at its vocoder's
    rate, unless --no-audio; -o NAME.wav writes the sound alone.
    """
    import dataclasses

    from vidlatent import distributed, latentfile, media
    from vidlatent.families.base import decode_settings
    from vidlatent.models import load_vae
    from vidlatent.errors import UsageError
    from vidlatent.video import decode_clip, write_sound

    report = Reporter(state, "decode")
    sources = expand_inputs(clips, folder_files=latentfile.folder_latents)
    outputs = [row[0] for row in plan_outputs(sources, 1, output, ".mp4")]
    for target in outputs:
        if no_audio and media.is_sound_path(target):
            raise UsageError(f"--no-audio: {target} is the sound alone; leave --no-audio out, or write a video")
        if not media.is_sound_path(target):
            media.output_kind(target)  # a video, frames or sound: never latents, nor stdout
        prepare_output(target, sources, sound=True)
    latent_clips, unreadable = _batch.open_inputs(sources, latentfile.read)  # each clip read and checked
    for source, target in zip(sources, outputs):
        if source not in latent_clips:
            continue
        clip = latent_clips[source]
        if media.is_sound_path(target):
            if not clip.has_audio:
                raise UsageError(f"-o {target}: {source} is a silent {clip.family} clip, so there is no sound to write; "
                                 "write a video (.mp4, .webm)")
        else:
            check_video_sizes([target], (clip.width, clip.height))
            if clip.has_audio and not no_audio and not media.holds_sound(target):
                report.note(f"{target}: .gif and PNG frames hold no sound, so the clip's sound is left out; "
                            "write .mp4 or .webm, or the sound alone with -o NAME.wav")
    loads = {source: load if model_given else dataclasses.replace(load, model=clip.model) for source, clip in latent_clips.items()}
    for model_load in {options.model: options for options in loads.values()}.values():
        # refuses --decode-timestep and --decode-noise-scale before loading, where the decoder takes none
        decode_settings(describe_model(model_load).family, None, timestep=decode_timestep, noise_scale=decode_noise_scale)
    ranks = distributed.launched()
    models: dict[str, Any] = {}  # model id -> its VAE, loaded once per process

    def vae_for(options: Any) -> Any:
        if options.model not in models:
            with report.timed("load"):
                models[options.model] = load_vae(join_launch(options, ranks), note=report.note, sound=not no_audio)
        return models[options.model]

    def label(job: tuple[str, str]) -> str:
        return "stdin" if job[0] == "-" else job[0]

    def decode(job: tuple[str, str]) -> list[dict[str, Any]]:
        source, target = job
        if source in unreadable:
            raise unreadable[source]
        latent_clip = latent_clips[source]
        model = vae_for(loads[source])
        latent_clip.require_space(model.latent_space, what=f"--model {model.model_id}")  # before the progress bar shows
        if media.is_sound_path(target):
            seconds = write_sound(latent_clip, model, target)
            report.note(f"wrote {seconds:.2f} s of sound to {target}")
            return [output_entry(target, latent_clip, frames=0) | {"seconds": round(seconds, 6)}]
        settings = decode_settings(model.family, model.vae, latent_clip, timestep=decode_timestep, noise_scale=decode_noise_scale)
        with report.timed("decode"), report.progress("decoding", latent_clip.pixel_frames) as progress:
            written = decode_clip(latent_clip, model, target, chunk=chunk, fps=fps, progress=progress, settings=settings,
                                  sound=not no_audio)
        how = f", decode timestep {settings.timestep:g}, noise {settings.noise_scale:g}" if settings is not None else ""
        if latent_clip.has_audio and not no_audio and media.holds_sound(target):
            how += ", with its sound"
        report.note(f"wrote {written} frames ({latent_clip.width}x{latent_clip.height} px{how}) to {target}")
        recorded = {"decode": settings.record()} if settings is not None else {}
        return [output_entry(target, latent_clip, frames=written) | {"fps": fps or latent_clip.fps} | recorded]

    entries = _batch.run(list(zip(sources, outputs)), decode, label=label, ranks=ranks, note=report.note)
    # One clip: its decode settings are the summary's; several: each output's own.
    single = {"decode": entries[0].pop("decode")} if len(entries) == 1 and "decode" in entries[0] else {}
    report.summary(entries, stdout_busy=False, model=entries[0]["model"] if entries else load.model, **single)
