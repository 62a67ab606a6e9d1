"""The references vidlatent is measured against: plain diffusers scripts, no vidlatent.

Each subcommand is what someone would write with diffusers alone to do the same job:

    python benchmarks/reference.py generate FOLDER IMAGE OUT --width W --height H --frames F --steps S --seed N
    python benchmarks/reference.py decode-latents FOLDER CLIP --chunk C

``generate`` loads the pipeline from a diffusers folder, makes the call that ``vidlatent
generate --seed N -o x.safetensors`` stands for, and saves the latents with safetensors.
``decode-latents`` reads a latent file's tensor with safetensors and decodes it with the
pipeline's own ``decode_latents`` under ``torch.no_grad()`` (as the pipeline's ``__call__``
does), which keeps every decoded frame in memory. ``--dry-run`` stops after parsing the
arguments (the benchmarks' smoke mode).
"""

from __future__ import annotations

import argparse
import sys


def generate(args: argparse.Namespace) -> None:
    import torch
    from diffusers import StableVideoDiffusionPipeline
    from PIL import Image
    from safetensors.torch import save_file

    pipe = StableVideoDiffusionPipeline.from_pretrained(args.folder)
    image = Image.open(args.image).convert("RGB")
    frames = pipe(
        image,
        height=args.height,
        width=args.width,
        num_frames=args.frames,
        num_inference_steps=args.steps,
        generator=torch.Generator("cpu").manual_seed(args.seed),
        output_type="latent",
    ).frames[0]  # (F, C, h, w)
    save_file({"latents": frames.contiguous()}, args.out)


def decode_latents(args: argparse.Namespace) -> None:
    import torch
    from diffusers import StableVideoDiffusionPipeline
    from safetensors.torch import load_file

    pipe = StableVideoDiffusionPipeline.from_pretrained(args.folder)
    latents = load_file(args.clip)["latents"]  # (F, C, h, w), scaled
    with torch.no_grad():
        frames = pipe.decode_latents(latents[None], num_frames=latents.shape[0], decode_chunk_size=args.chunk)
    print(tuple(frames.shape))  # (1, 3, F, H, W): every frame, held at once


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="Parse the arguments and stop.")
    tasks = parser.add_subparsers(dest="task", required=True)
    g = tasks.add_parser("generate")
    g.add_argument("folder")
    g.add_argument("image")
    g.add_argument("out")
    g.add_argument("--width", type=int, required=True)
    g.add_argument("--height", type=int, required=True)
    g.add_argument("--frames", type=int, required=True)
    g.add_argument("--steps", type=int, required=True)
    g.add_argument("--seed", type=int, required=True)
    d = tasks.add_parser("decode-latents")
    d.add_argument("folder")
    d.add_argument("clip")
    d.add_argument("--chunk", type=int, required=True)
    args = parser.parse_args(argv)
    if args.dry_run:
        return
    {"generate": generate, "decode-latents": decode_latents}[args.task](args)


if __name__ == "__main__":
    main(sys.argv[1:])
