"""The bad-input corpus: every command, fed what a new user (or a script) really feeds it.

Each case is a command line, the exit status it must end with and a fragment of the message.
Every case must also print exactly one line on stderr, starting ``vidlatent: error:``, no
traceback, nothing on stdout, and leave its output folder and the inputs as they were. The
cases run in-process (click's CliRunner); ``FAST`` marks those that must fail before torch is
even imported, which one subprocess proves with torch made unimportable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.conftest import data_file
from vidlatent import latentfile
from vidlatent.cli import main

ROOT = Path(__file__).resolve().parents[1]
# Where an output cannot be written: root may write anywhere but /proc.
UNWRITABLE = "/proc" if os.geteuid() == 0 else "{in}/locked"

C = "{in}/clip.safetensors"
OUT = "{out}/o.safetensors"
VIDEO_OUT = "{out}/o.mp4"

# (id, arguments, exit status, fragment of the one error line, stdin bytes or None, must fail before torch loads)
CASES = [
    # --- the command line itself
    ("no-such-command", ["frobnicate"], 2, "no such command 'frobnicate'", None, True),
    ("group-bad-option", ["--bogus"], 2, "no such option", None, True),
    ("env-extra-argument", ["env", "extra"], 2, "unexpected extra argument", None, True),
    ("env-bad-option", ["env", "--bogus"], 2, "no such option", None, True),
    # --- encode
    ("encode-missing-file", ["encode", "{in}/absent.mp4", "-o", OUT], 2, "no such file", None, True),
    ("encode-no-argument", ["encode"], 2, "missing argument 'VIDEO...'", None, True),
    ("encode-empty-folder", ["encode", "{in}/empty-folder", "-o", OUT], 2, "holds no images", None, True),
    ("encode-folder-garbage-image", ["encode", "{in}/garbage-frames", "-o", OUT], 2, "not a readable image", None, True),
    ("encode-folder-mixed-sizes", ["encode", "{in}/mixed-frames", "-o", OUT], 2, "differs from the folder's first image", None, True),
    ("encode-text-as-mp4", ["encode", "{in}/text.mp4", "-o", OUT], 2, "not a readable video", None, True),
    ("encode-text-as-gif", ["encode", "{in}/text.gif", "-o", OUT], 2, "not a readable video", None, True),
    ("encode-empty-mp4", ["encode", "{in}/empty.mp4", "-o", OUT], 2, "not a readable video", None, True),
    ("encode-cut-mp4-no-index", ["encode", "{in}/cut.mp4", "-o", OUT], 2, "not a readable video", None, True),
    ("encode-audio-only", ["encode", "{in}/audio.mp4", "-o", OUT], 2, "no video stream", None, True),
    ("encode-wrong-suffix", ["encode", "{in}/notes.txt", "-o", OUT], 2, "not a video type", None, True),
    ("encode-video-output", ["encode", "{in}/video.mp4", "-o", VIDEO_OUT], 2, "*.safetensors", None, True),
    ("encode-output-is-input", ["encode", "{in}/v.safetensors"], 2, "is the input", None, True),
    ("encode-start-negative", ["encode", "{in}/video.mp4", "--start", "-1", "-o", OUT], 2, "'--start'", None, True),
    ("encode-start-past-end", ["encode", "{in}/video.mp4", "--start", "500", "-o", OUT], 2, "has 21 frame", None, True),
    ("encode-frames-zero", ["encode", "{in}/video.mp4", "--frames", "0", "-o", OUT], 2, "'--frames'", None, True),
    ("encode-stride-zero", ["encode", "{in}/video.mp4", "--stride", "0", "-o", OUT], 2, "'--stride'", None, True),
    ("encode-fps-zero", ["encode", "{in}/video.mp4", "--fps", "0", "-o", OUT], 2, "'--fps'", None, True),
    ("encode-fps-not-a-number", ["encode", "{in}/video.mp4", "--fps", "fast", "-o", OUT], 2, "'--fps'", None, True),
    ("encode-fps-and-stride", ["encode", "{in}/video.mp4", "--fps", "5", "--stride", "2", "-o", OUT], 2, "one or the other", None, True),
    ("encode-size-not-64", ["encode", "{in}/video.mp4", "--size", "100x64", "-o", OUT], 2, "multiples of 64", None, True),
    ("encode-size-garbage", ["encode", "{in}/video.mp4", "--size", "big", "-o", OUT], 2, "WIDTHxHEIGHT", None, True),
    ("encode-chunk-zero", ["encode", "{in}/video.mp4", "--chunk", "0", "-o", OUT], 2, "'--chunk'", None, True),
    ("encode-bad-device", ["encode", "{in}/video.mp4", "--device", "tpu", "-o", OUT], 2, "--device 'tpu'", None, True),
    ("encode-bad-dtype", ["encode", "{in}/video.mp4", "--dtype", "fp8", "-o", OUT], 2, "'--dtype'", None, True),
    ("encode-bad-offload", ["encode", "{in}/video.mp4", "--offload", "disk", "-o", OUT], 2, "'--offload'", None, True),
    ("encode-offload-on-cpu", ["encode", "{in}/video.mp4", "--model", "tiny-random", "--device", "cpu", "--offload", "model",
                               "-o", OUT], 2, "needs --device cuda", None, False),
    ("encode-new-folder-not-made-on-refusal", ["encode", "{in}/video.mp4", "--model", "{in}/no-such-model", "-o",
                                               "{out}/no/such/folder/o.safetensors"], 1, "no such model folder", None, False),
    ("encode-output-is-a-folder", ["encode", "{in}/video.mp4", "-o", "{in}/folder.safetensors"], 2, "folder.safetensors: is a folder", None, True),
    ("encode-model-folder-missing", ["encode", "{in}/video.mp4", "--model", "{in}/no-such-model", "-o", OUT], 1, "no such model folder", None, False),
    ("encode-model-not-downloadable", ["encode", "{in}/video.mp4", "--model", "someone/some-model", "-o", OUT], 1, "--model tiny-random", None, False),
    ("encode-model-not-diffusers", ["encode", "{in}/video.mp4", "--model", "{in}/empty-folder", "-o", OUT], 1, "no model_index.json", None, False),
    ("encode-unknown-option", ["encode", "{in}/video.mp4", "--resize", "2"], 2, "no such option", None, True),
    # --- decode
    ("decode-missing", ["decode", "{in}/absent.safetensors", "-o", VIDEO_OUT], 2, "no such file", None, True),
    ("decode-no-argument", ["decode"], 2, "missing argument 'CLIP...'", None, True),
    ("decode-empty-folder", ["decode", "{in}/empty-folder", "-o", "{out}"], 2, "holds no latent files", None, True),
    ("decode-folder-to-one-file", ["decode", "{in}/clips", "-o", VIDEO_OUT], 2, "there are 2 outputs", None, True),
    ("decode-an-mp4", ["decode", "{in}/video.mp4", "-o", VIDEO_OUT], 2, "is a video, not a latent file; encode it first: vidlatent encode", None, True),
    ("decode-an-image", ["decode", "{in}/image.png", "-o", VIDEO_OUT], 2, "is an image", None, True),
    ("decode-garbage", ["decode", "{in}/garbage.safetensors", "-o", VIDEO_OUT], 2, "not a readable safetensors file", None, False),
    ("decode-empty-file", ["decode", "{in}/empty.safetensors", "-o", VIDEO_OUT], 2, "is empty", None, False),
    ("decode-truncated", ["decode", "{in}/truncated.safetensors", "-o", VIDEO_OUT], 2, "truncated", None, False),
    ("decode-truncated-header", ["decode", "{in}/header-cut.safetensors", "-o", VIDEO_OUT], 2, "truncated", None, False),
    ("decode-huge-header-length", ["decode", "{in}/huge-header.safetensors", "-o", VIDEO_OUT], 2, "its header claims", None, False),
    ("decode-plain-safetensors", ["decode", "{in}/plain.safetensors", "-o", VIDEO_OUT], 2, "not a vidlatent latent file", None, False),
    ("decode-nan", ["decode", "{in}/nan.safetensors", "-o", VIDEO_OUT], 2, "NaN or infinite", None, False),
    ("decode-empty-stdin", ["decode", "-", "-o", VIDEO_OUT], 2, "stdin: is empty", b"", False),
    ("decode-garbage-stdin", ["decode", "-", "-o", VIDEO_OUT], 2, "stdin: not a readable safetensors file", b"GIF89a garbage, not latents", False),
    ("decode-truncated-stdin", ["decode", "-", "-o", VIDEO_OUT], 2, "truncated", "{truncated}", False),
    ("decode-stdin-no-output", ["decode", "-"], 2, "give -o", None, True),
    ("decode-avi", ["decode", C, "-o", "{out}/o.avi"], 2, "cannot write '.avi'", None, True),
    ("decode-txt", ["decode", C, "-o", "{out}/o.txt"], 2, "cannot write '.txt'", None, True),
    ("decode-to-stdout", ["decode", C, "-o", "-"], 2, "cannot go to standard output", None, True),
    ("decode-output-is-input", ["decode", C, "-o", C], 2, "cannot write '.safetensors'", None, True),
    ("decode-busy-frames-folder", ["decode", C, "-o", "{out}/busy"], 2, "holds other files", None, True),
    ("decode-fps-zero", ["decode", C, "--fps", "0", "-o", VIDEO_OUT], 2, "'--fps'", None, True),
    ("decode-chunk-zero", ["decode", C, "--chunk", "0", "-o", VIDEO_OUT], 2, "'--chunk'", None, True),
    ("decode-new-folder-not-made-on-refusal", ["decode", C, "--model", "{in}/no-such-model", "-o", "{out}/no/such/o.mp4"], 1,
     "no such model folder", None, False),
    ("decode-output-is-a-folder", ["decode", C, "-o", "{in}/folder.mp4"], 2, "folder.mp4: is a folder", None, True),
    ("decode-output-under-a-file", ["decode", C, "-o", "{in}/notes.txt/o.mp4"], 1, "its folder cannot be made", None, True),
    ("decode-absurd-latents", ["decode", "{in}/absurd.safetensors", "-o", VIDEO_OUT], 1, "NaN or infinite pixels", None, False),
    ("decode-absurd-latents-to-frames", ["decode", "{in}/absurd.safetensors", "-o", "{out}/frames"], 1, "NaN or infinite pixels", None, False),
    ("decode-too-wide-for-h264", ["decode", "{in}/wide.safetensors", "-o", VIDEO_OUT], 2, "at most 16384 px a side", None, False),
    ("decode-model-folder-missing", ["decode", C, "--model", "{in}/no-such-model", "-o", VIDEO_OUT], 1, "no such model folder", None, False),
    ("decode-unwritable", ["decode", C, "-o", UNWRITABLE + "/o.mp4"], 1, "cannot write", None, False),
    # --- inspect
    ("inspect-missing", ["inspect", "{in}/absent.safetensors"], 2, "no such file", None, True),
    ("inspect-no-argument", ["inspect"], 2, "missing argument 'CLIP'", None, True),
    ("inspect-folder", ["inspect", "{in}/empty-folder"], 2, "the folder holds no images", None, True),
    ("inspect-an-untagged-mp4", ["inspect", "{in}/video.mp4"], 2, "carries no vidlatent history tag", None, True),
    # --- replay
    ("replay-missing", ["replay", "{in}/absent.safetensors"], 2, "no such file", None, True),
    ("replay-no-argument", ["replay"], 2, "missing argument", None, True),
    ("replay-an-untagged-mp4", ["replay", "{in}/video.mp4"], 2, "carries no vidlatent history tag", None, True),
    ("replay-an-image", ["replay", "{in}/image.png"], 2, "is an image, not a latent file", None, True),
    ("replay-garbage", ["replay", "{in}/garbage.safetensors"], 2, "not a readable safetensors file", None, False),
    ("replay-onto-its-input", ["replay", C, "-o", C], 2, "is the input", None, False),
    ("inspect-garbage", ["inspect", "{in}/garbage.safetensors"], 2, "not a readable safetensors file", None, False),
    ("inspect-truncated", ["inspect", "{in}/truncated.safetensors"], 2, "truncated", None, False),
    ("inspect-empty-stdin", ["inspect", "-"], 2, "is empty", b"", False),
    ("inspect-two-clips", ["inspect", C, C], 2, "unexpected extra argument", None, True),
    ("inspect-bad-option", ["inspect", C, "--verbose"], 2, "no such option", None, True),
    # --- generate
    ("generate-missing-image", ["generate", "{in}/absent.png", "-o", VIDEO_OUT], 2, "no such image", None, False),
    ("generate-no-argument", ["generate"], 2, "give IMAGE... to animate, or --prompt TEXT", None, True),
    ("generate-text-as-png", ["generate", "{in}/text.png", "-o", VIDEO_OUT], 2, "not a readable image", None, False),
    ("generate-empty-folder", ["generate", "{in}/empty-folder", "-o", "{out}"], 2, "holds no images", None, False),
    ("generate-num-videos-zero", ["generate", "{in}/image.png", "--num-videos", "0"], 2, "'--num-videos': 0 is not in the range", None, True),
    ("generate-seed-negative", ["generate", "{in}/image.png", "--seed", "-1"], 2, "'--seed'", None, True),
    ("generate-decode-chunk-zero", ["generate", "{in}/image.png", "--decode-chunk", "0"], 2, "'--decode-chunk'", None, True),
    ("generate-size-not-64", ["generate", "{in}/image.png", "--size", "100x64", "-o", VIDEO_OUT], 2, "multiples of 64", None, False),
    ("generate-size-beyond-h264", ["generate", "{in}/image.png", "--size", "16448x64", "-o", VIDEO_OUT], 2, "at most 16384 px a side", None, False),
    ("generate-wide-photo-on-svd", ["generate", "{in}/wide.png", "-o", VIDEO_OUT], 2, "24256x64 px is more than", None, False),
    ("generate-motion-out-of-range", ["generate", "{in}/image.png", "--motion", "999", "-o", VIDEO_OUT], 2, "--motion 999", None, False),
    ("generate-steps-zero", ["generate", "{in}/image.png", "--steps", "0", "-o", VIDEO_OUT], 2, "--steps 0", None, False),
    ("generate-txt-output", ["generate", "{in}/image.png", "-o", "{out}/o.txt"], 2, "cannot write '.txt'", None, False),
    ("generate-output-is-input", ["generate", "{in}/image.png", "-o", "{in}/image.png"], 2, "cannot write '.png'", None, False),
    ("generate-two-outputs-one-name", ["generate", "{in}/image.png", "--num-videos", "2", "-o", VIDEO_OUT], 2, "there are 2 outputs", None, False),
    ("generate-bad-pattern", ["generate", "{in}/image.png", "-o", "{out}/{{colour}}.mp4"], 2, "{stem}, {index} and {name}", None, False),
    ("generate-stdin-twice", ["generate", "-", "-", "-o", "{out}"], 2, "only once", b"x", False),
    ("generate-empty-stdin", ["generate", "-", "-o", VIDEO_OUT], 2, "not a readable image", b"", False),
    ("generate-garbage-stdin", ["generate", "-", "-o", VIDEO_OUT], 2, "not a readable image", b"not an image at all", False),
    ("generate-stdin-no-output", ["generate", "-"], 2, "give -o", b"x", False),
    ("generate-latent-out-video", ["generate", "{in}/image.png", "-o", VIDEO_OUT, "--latent-out", "{out}/l.mp4"], 2, "--latent-out", None, False),
    ("generate-both-to-stdout", ["generate", "{in}/image.png", "-o", "-", "--latent-out", "-"], 2, "both write to stdout", None, False),
    ("generate-output-is-a-folder", ["generate", "{in}/image.png", "-o", "{in}/folder.mp4"], 2, "is a folder", None, False),
    ("generate-new-folder-not-made-on-refusal", ["generate", "{in}/image.png", "--motion", "999", "-o", "{out}/new/o.mp4"], 2,
     "--motion 999", None, False),
    ("generate-context-parallel-no-launch", ["generate", "{in}/image.png", "--context-parallel", "2", "-o", VIDEO_OUT], 2,
     "run it under torchrun --nproc-per-node 2", None, True),
    ("generate-context-parallel-zero", ["generate", "{in}/image.png", "--context-parallel", "0", "-o", VIDEO_OUT], 2,
     "must be at least 2", None, True),
    ("generate-lora-bad-scale", ["generate", "{in}/image.png", "--lora", "{in}/plain.safetensors:abc", "-o", VIDEO_OUT], 2,
     "'abc' is not a scale", None, False),
    ("generate-lora-missing", ["generate", "{in}/image.png", "--lora", "{in}/absent.safetensors:0.5", "-o", VIDEO_OUT], 2,
     "absent.safetensors: no such file", None, False),
    ("generate-wan-size-beyond-its-positions", ["generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--size", "100000x64",
                                                "-o", OUT], 2, "--size 100000x64: Wan 2.2 text/image-to-video takes at most 1024 px a side", None, False),
    ("generate-wan-frames-beyond-its-positions", ["generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--frames", "1001",
                                                  "-o", OUT], 2, "--frames 1001: Wan 2.2 text/image-to-video takes at most 125 frames", None, False),
    ("generate-wan-wide-photo-beyond-its-positions", ["generate", "{in}/wide.png", "--model", "tiny-random-wan22", "--prompt", "a fox",
                                                      "-o", OUT], 2, "wide.png: the size it gives,", None, False),
    ("generate-attention-package-missing", ["generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--attention",
                                            "sage", "-o", OUT], 2, "needs the sageattention package", None, True),
    ("generate-attention-on-cpu", ["generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--attention", "flash_hub",
                                   "--device", "cpu", "-o", OUT], 2, "needs a CUDA GPU (--device cpu); usable here: native", None, True),
    ("generate-attention-unknown", ["generate", "{in}/image.png", "--attention", "fast"], 2, "'fast' is not one of", None, True),
    ("generate-attention-on-svd", ["generate", "{in}/image.png", "--attention", "native", "-o", VIDEO_OUT], 2,
     "--attention native: Stable Video Diffusion's denoiser does not run its attention", None, False),
    ("generate-cache-unknown-method", ["generate", "{in}/image.png", "--cache", "tea"], 2, "expected one of first-block", None, True),
    ("generate-cache-unknown-setting", ["generate", "{in}/image.png", "--cache", "taylorseer:interval=2"], 2,
     "taylorseer has no setting 'interval'", None, True),
    ("generate-cache-bad-value", ["generate", "{in}/image.png", "--cache", "mag:retention_ratio=2"], 2,
     "retention_ratio must be a number from 0 to 1", None, True),
    ("generate-cache-ratios-missing", ["generate", "{in}/image.png", "--cache", "mag:ratios={in}/absent.json"], 2,
     "absent.json: no such file; make one with vidlatent calibrate-cache", None, True),
    ("generate-cache-ratios-not-ratios", ["generate", "{in}/image.png", "--cache", "mag:ratios={in}/text.png"], 2,
     "not a ratios file of vidlatent calibrate-cache", None, True),
    ("generate-cache-mag-unpublished", ["generate", "--model", "tiny-random-wan22", "--prompt", "a fox", "--cache", "mag",
                                        "-o", OUT], 2, "no magnitude ratios are published for tiny-random-wan22", None, False),
    ("generate-cache-first-block-one-block", ["generate", "--model", "tiny-random-ltx", "--prompt", "a fox", "--cache",
                                              "first-block", "-o", OUT], 2, "has 1; use taylorseer or mag", None, False),
    # --- plan: checked as the run it plans would be, nothing loads
    ("plan-bad-vram", ["plan", "--model", "tiny-random-wan", "--vram", "12Q"], 2, "--vram '12Q': expected a memory size", None, True),
    ("plan-size-off-the-multiple", ["plan", "--model", "tiny-random-wan", "--size", "60x60"], 2, "--size 60x60", None, False),
    ("plan-frames-off-the-rule", ["plan", "--model", "tiny-random-wan", "--frames", "8"], 2, "--frames 8", None, False),
    ("generate-plan-bad-vram", ["generate", "{in}/image.png", "--model", "tiny-random-wan", "--vram", "-3G", "-o", VIDEO_OUT], 2,
     "--vram", None, True),
    # --- calibrate-cache
    ("calibrate-cache-no-output", ["calibrate-cache", "--model", "tiny-random-wan22", "--prompt", "a fox"], 2, "give -o FILE.json",
     None, True),
    ("calibrate-cache-not-json", ["calibrate-cache", "--model", "tiny-random-wan22", "--prompt", "a fox", "-o", "{out}/r.txt"], 2,
     "give a .json file", None, True),
    ("calibrate-cache-with-a-cache", ["calibrate-cache", "--model", "tiny-random-wan22", "--prompt", "a fox", "--cache",
                                      "first-block", "-o", "{out}/r.json"], 2, "measures the model without a cache", None, True),
    ("calibrate-cache-svd", ["calibrate-cache", "{in}/image.png", "-o", "{out}/r.json"], 2,
     "Stable Video Diffusion's denoiser has no step cache", None, False),
    ("generate-output-under-a-file", ["generate", "{in}/image.png", "-o", "{in}/image.png/o.mp4"], 1, "its folder cannot be made", None, False),
    ("generate-model-folder-missing", ["generate", "{in}/image.png", "--model", "{in}/no-such-model", "-o", VIDEO_OUT], 1, "no such model folder", None, False),
    ("generate-model-not-downloadable", ["generate", "{in}/image.png", "--model", "someone/some-model", "-o", VIDEO_OUT], 1, "--model tiny-random", None, False),
    # --- extend
    ("extend-missing", ["extend", "{in}/absent.safetensors", "-o", OUT], 2, "no such file", None, False),
    ("extend-garbage", ["extend", "{in}/garbage.safetensors", "-o", OUT], 2, "not a readable safetensors file", None, False),
    ("extend-a-direction", ["extend", "{in}/direction.safetensors", "-o", OUT], 2, "is a direction, not a clip", None, False),
    ("extend-times-zero", ["extend", C, "--times", "0", "-o", OUT], 2, "'--times'", None, True),
    ("extend-overlap-negative", ["extend", C, "--overlap", "-1", "-o", OUT], 2, "'--overlap'", None, True),
    ("extend-stdin-no-output", ["extend", "-"], 2, "give -o", "{clip}", False),
    ("extend-empty-stdin", ["extend", "-", "-o", OUT], 2, "is empty", b"", False),
    ("extend-txt-output", ["extend", C, "-o", "{out}/o.txt"], 2, "cannot write '.txt'", None, False),
    ("extend-output-is-input", ["extend", C, "-o", C], 2, "is the input", None, False),
    ("extend-missing-video", ["extend", "{in}/absent.mp4", "-o", OUT], 2, "no such file", None, False),
    ("extend-overlap-too-long", ["extend", C, "--overlap", "9", "--frames", "4", "-o", OUT], 2, "--overlap 9", None, False),
    ("extend-wide-clip-to-mp4", ["extend", "{in}/wide.safetensors", "-o", VIDEO_OUT], 2, "at most 16384 px a side", None, False),
    ("extend-output-is-a-folder", ["extend", C, "-o", "{in}/folder.safetensors"], 2, "is a folder", None, False),
    ("extend-output-is-input-by-link", ["extend", C, "-o", "{in}/link.safetensors"], 2, "is the input", None, True),
    ("extend-empty-folder", ["extend", "{in}/empty-folder", "-o", "{out}"], 2, "holds no latent files", None, False),
    # --- upscale
    ("upscale-no-argument", ["upscale"], 2, "missing argument 'CLIP'", None, True),
    ("upscale-missing", ["upscale", "{in}/absent.safetensors", "-o", OUT], 2, "no such file", None, False),
    ("upscale-garbage", ["upscale", "{in}/garbage.safetensors", "-o", OUT], 2, "not a readable safetensors file", None, False),
    ("upscale-a-direction", ["upscale", "{in}/direction.safetensors", "-o", OUT], 2, "is a direction, not a clip", None, False),
    ("upscale-svd-clip", ["upscale", C, "-o", OUT], 2, "LTX-Video", None, False),
    ("upscale-output-is-input", ["upscale", C, "-o", C], 2, "is the input", None, False),
    ("upscale-new-folder-not-made-on-refusal", ["upscale", C, "-o", "{out}/new/o.safetensors"], 2, "LTX-Video", None, False),
    ("upscale-output-is-input-by-link", ["upscale", C, "-o", "{in}/link.safetensors"], 2, "is the input", None, True),
    ("upscale-txt-output", ["upscale", C, "-o", "{out}/o.txt"], 2, "cannot write '.txt'", None, False),
    # --- interpolate
    ("interpolate-no-factor", ["interpolate", C, "-o", OUT], 2, "give --factor K", None, False),
    ("interpolate-factor-one", ["interpolate", C, "--factor", "1", "-o", OUT], 2, "'--factor': 1 is not in the range", None, True),
    ("interpolate-an-mp4", ["interpolate", "{in}/video.mp4", "--factor", "2", "-o", OUT], 2, "is a video", None, False),
    ("interpolate-video-output", ["interpolate", C, "--factor", "2", "-o", VIDEO_OUT], 2, "writes latents", None, False),
    ("interpolate-three-clips", ["interpolate", C, C, C, "-o", OUT], 2, "got 3", None, False),
    ("interpolate-two-clips-no-mode", ["interpolate", C, C, "-o", OUT], 2, "give one of --morphs N", None, False),
    ("interpolate-morphs-one", ["interpolate", C, C, "--morphs", "1", "-o", "{out}"], 2, "'--morphs'", None, True),
    ("interpolate-steps-as-morphs", ["interpolate", C, C, "--steps", "3", "-o", "{out}"], 2, "give --morphs 3", None, True),
    ("interpolate-refine-steps-renamed", ["interpolate", C, "--factor", "2", "--refine", "0.5", "--refine-steps", "3", "-o", OUT], 2,
     "--refine-steps is now --steps", None, True),
    ("interpolate-steps-without-refine", ["interpolate", C, "--factor", "2", "--steps", "3", "-o", OUT], 2,
     "--steps applies only with --refine", None, True),
    ("interpolate-transition-zero", ["interpolate", C, C, "--transition", "0", "-o", OUT], 2, "'--transition'", None, True),
    ("interpolate-join-alone", ["interpolate", C, C, "--morphs", "3", "--join", "-o", "{out}"], 2, "--join needs --transition", None, False),
    ("interpolate-refine-too-big", ["interpolate", C, "--factor", "2", "--refine", "2", "-o", OUT], 2, "'--refine'", None, True),
    ("interpolate-steps-zero", ["interpolate", C, "--factor", "2", "--refine", "0.5", "--steps", "0", "-o", OUT], 2, "--steps 0", None, True),
    ("interpolate-factor-with-two", ["interpolate", C, C, "--factor", "2", "-o", OUT], 2, "works on one CLIP", None, False),
    ("interpolate-morph-to-stdout", ["interpolate", C, C, "--morphs", "3", "-o", "-"], 2, "give -o DIR", None, False),
    ("interpolate-garbage", ["interpolate", "{in}/garbage.safetensors", "--factor", "2", "-o", OUT], 2, "not a readable safetensors file", None, False),
    ("interpolate-stdin-twice", ["interpolate", "-", "-", "--transition", "2", "-o", OUT], 2, "only once", b"", False),
    ("interpolate-output-is-input", ["interpolate", C, "--factor", "2", "-o", C], 2, "is the input", None, False),
    ("interpolate-keyframes-on-svd", ["interpolate", C, C, "--transition", "3", "--keyframes", "-o", OUT], 2, "cannot be conditioned on a last frame", None, False),
    ("interpolate-keyframes-new-folder-not-made", ["interpolate", C, C, "--transition", "3", "--keyframes", "-o",
                                                   "{out}/sub/o.safetensors"], 2, "cannot be conditioned on a last frame", None, False),
    ("interpolate-output-is-a-folder", ["interpolate", C, "--factor", "2", "-o", "{in}/folder.safetensors"], 2, "is a folder", None, False),
    ("interpolate-output-is-input-by-link", ["interpolate", C, "--factor", "2", "-o", "{in}/link.safetensors"], 2, "is the input", None, True),
    ("interpolate-transition-output-is-input-by-link", ["interpolate", C, "{in}/one.safetensors", "--transition", "2", "-o",
                                                        "{in}/link.safetensors"], 2, "is the input", None, True),
    ("interpolate-refine-wan-clip-svd-model", ["interpolate", "{in}/wan.safetensors", "--factor", "2", "--refine", "0.5", "--model",
                                               "tiny-random", "-o", OUT], 2, "(wan family) belong to another VAE than --model tiny-random", None, False),
    ("interpolate-factor-terabytes", ["interpolate", C, "--factor", "1000000000000", "-o", OUT], 2, "GiB in memory, more than this machine", None, False),
    ("interpolate-transition-terabytes", ["interpolate", C, C, "--transition", "1000000000000", "-o", OUT], 2, "GiB in memory", None, False),
    ("interpolate-morphs-terabytes", ["interpolate", C, C, "--morphs", "1000000000000", "-o", "{out}/m"], 2, "--morphs 1000000000000: the result", None, False),
    ("extend-wan-frames-beyond-its-positions", ["extend", "{in}/wan.safetensors", "--frames", "1001", "-o", OUT], 2, "at most 125 frames", None, False),
    ("interpolate-sizes-differ", ["interpolate", C, "{in}/wide.safetensors", "--transition", "2", "-o", OUT], 2, "--resample", None, False),
    # --transition F counts pixel frames, with or without --keyframes: F follows the clips' frame rule (Wan 4k+1)
    ("interpolate-transition-8-on-wan", ["interpolate", "{in}/wan.safetensors", "{in}/wan.safetensors", "--transition", "8", "-o", OUT], 2,
     "latents make 4k+1 frames (its VAE's rule); use 5 or 9", None, False),
    ("interpolate-transition-2-on-wan", ["interpolate", "{in}/wan.safetensors", "{in}/wan.safetensors", "--transition", "2", "-o", OUT], 2, "use 1 or 5", None, False),
    ("interpolate-join-transition-6-on-wan", ["interpolate", "{in}/wan.safetensors", "{in}/wan.safetensors", "--transition", "6", "--join", "-o", OUT], 2, "use 5 or 9",
     None, False),
    ("interpolate-transition-on-wan-new-folder-not-made", ["interpolate", "{in}/wan.safetensors", "{in}/wan.safetensors", "--transition", "4", "-o", "{out}/sub/o.safetensors"],
     2, "use 1 or 5", None, False),
    ("interpolate-transition-negative", ["interpolate", C, C, "--transition", "-3", "-o", OUT], 2, "'--transition'", None, True),
    ("interpolate-transition-not-a-number", ["interpolate", C, C, "--transition", "nine", "-o", OUT], 2, "'--transition'", None, True),
    ("interpolate-keyframes-without-transition", ["interpolate", C, C, "--keyframes", "-o", OUT], 2,
     "--keyframes needs --transition F", None, True),
    ("interpolate-keyframes-with-one-clip", ["interpolate", C, "--keyframes", "--factor", "2", "-o", OUT], 2,
     "--keyframes needs two clips", None, False),
    ("interpolate-transition-with-one-clip", ["interpolate", C, "--transition", "9", "-o", OUT], 2, "--transition needs two clips",
     None, False),
    # offline hints name a tiny model that can do what was asked
    ("interpolate-keyframes-on-svd-names-a-tiny-flf2v", ["interpolate", C, C, "--transition", "3", "--keyframes", "-o", OUT], 2,
     "offline: --model tiny-random-wan-flf2v or tiny-random-ltx", None, False),
    ("interpolate-keyframes-on-wan22-names-wan-first", ["interpolate", "{in}/wan.safetensors", "{in}/wan.safetensors", "--transition", "9", "--keyframes", "-o", OUT], 2,
     "can: --model wan21-flf2v or wan21-vace-1.3b or ltx-0.9.7-dev or ltx2 (offline: --model tiny-random-wan-flf2v", None, False),
    ("upscale-svd-clip-names-a-tiny-ltx", ["upscale", C, "-o", OUT], 2, "offline: --model tiny-random-ltx", None, False),
    ("generate-upscale-on-svd-names-a-tiny-ltx", ["generate", "{in}/image.png", "--model", "tiny-random", "--upscale", "-o", VIDEO_OUT],
     2, "LTX-Video or LTX-2 has one: --model ltx-0.9.7-dev or ltx2 (offline: --model tiny-random-ltx or tiny-random-ltx2)", None, False),
    ("transfer-inversion-on-wan-names-a-tiny-svd", ["transfer-motion", "{in}/wan.safetensors", "{in}/image.png", "--method", "inversion", "-o", OUT], 2,
     "offline: --model tiny-random)", None, False),
    ("interpolate-transition-svd-to-wan", ["interpolate", C, "{in}/wan.safetensors", "--transition", "3", "-o", OUT], 2,
     "belong to", None, False),
    ("extend-wan-overlap-zero", ["extend", "{in}/wan.safetensors", "--overlap", "0", "--frames", "5", "-o", OUT], 2, "--overlap 0",
     None, False),
    ("generate-last-image-on-i2v-model", ["generate", "{in}/image.png", "--last-image", "{in}/image.png", "--model", "tiny-random-wan22",
                                          "-o", VIDEO_OUT], 2, "not a first-last-frame model", None, False),
    # --- edit
    ("edit-nothing-to-do", ["edit", C, "-o", OUT], 2, "nothing to do", None, False),
    ("edit-strength-alone", ["edit", C, "--strength", "0.5", "-o", OUT], 2, "--strength applies only with --image", None, False),
    ("edit-strength-out-of-range", ["edit", C, "--image", "{in}/image.png", "--strength", "1.5", "-o", OUT], 2, "'--strength'", None, True),
    ("edit-image-without-strength", ["edit", C, "--image", "{in}/image.png", "-o", OUT], 2, "--image needs --strength", None, False),
    ("edit-image-missing", ["edit", C, "--image", "{in}/absent.png", "--strength", "0.5", "-o", OUT], 2, "no such file", None, False),
    ("edit-image-garbage", ["edit", C, "--image", "{in}/text.png", "--strength", "0.5", "-o", OUT], 2, "not a readable image", None, False),
    ("edit-scale-alone", ["edit", C, "--scale", "2", "-o", OUT], 2, "--scale needs --direction", None, False),
    ("edit-trim-garbage", ["edit", C, "--trim", "a:b", "-o", OUT], 2, "expected START:END", None, False),
    ("edit-trim-out-of-range", ["edit", C, "--trim", "2:99", "-o", OUT], 2, "the clip has 4 latent frames", None, False),
    ("edit-smooth-negative", ["edit", C, "--smooth", "-1", "-o", OUT], 2, "'--smooth'", None, True),
    ("edit-loop-frames-alone", ["edit", C, "--reverse", "--loop-frames", "2", "-o", OUT], 2, "--loop-frames needs --loop", None, False),
    # edit counts latent frames, and says so
    ("edit-loop-frames-over-half", ["edit", C, "--loop", "--loop-frames", "3", "-o", OUT], 2, "half the clip's 4 latent frames (2)",
     None, False),
    ("edit-loop-frames-zero", ["edit", C, "--loop", "--loop-frames", "0", "-o", OUT], 2, "'--loop-frames'", None, True),
    ("edit-trim-wan-clip-in-latent-frames", ["edit", "{in}/wan.safetensors", "--trim", "0:5", "-o", OUT], 2,
     "the clip has 2 latent frames", None, False),
    ("edit-trim-empty-range", ["edit", C, "--trim", "3:1", "-o", OUT], 2, "the clip has 4 latent frames", None, False),
    ("edit-direction-stdin", ["edit", C, "--direction", "-", "-o", OUT], 2, "take files", None, False),
    ("edit-direction-missing", ["edit", C, "--direction", "{in}/absent.safetensors", "-o", OUT], 2, "no such file", None, False),
    ("edit-direction-is-a-clip", ["edit", C, "--direction", C, "-o", OUT], 2, "expected 'direction'", None, False),
    ("edit-clip-is-a-direction", ["edit", "{in}/direction.safetensors", "--reverse", "-o", OUT], 2, "expected 'clip'", None, False),
    ("edit-pca-shift-alone", ["edit", C, "--pca-shift", "1:2", "-o", OUT], 2, "go together", None, False),
    ("edit-pca-shift-garbage", ["edit", C, "--pca-shift", "one", "-o", OUT], 2, "expected COMPONENT:AMOUNT", None, False),
    ("edit-an-mp4", ["edit", "{in}/video.mp4", "--reverse", "-o", OUT], 2, "is a video", None, False),
    ("edit-video-output", ["edit", C, "--reverse", "-o", VIDEO_OUT], 2, "writes latents", None, False),
    ("edit-output-is-input", ["edit", C, "--reverse", "-o", C], 2, "is the input", None, False),
    ("edit-empty-stdin", ["edit", "-", "--reverse", "-o", OUT], 2, "is empty", b"", False),
    ("edit-output-is-a-folder", ["edit", C, "--reverse", "-o", "{in}/folder.safetensors"], 2, "is a folder", None, False),
    ("edit-new-folder-not-made-on-refusal", ["edit", C, "--trim", "2:99", "-o", "{out}/new/deeper/o.safetensors"], 2,
     "the clip has 4 latent frames", None, False),
    ("edit-output-is-input-by-link", ["edit", C, "--reverse", "-o", "{in}/link.safetensors"], 2, "is the input", None, True),
    ("edit-wan-clip-svd-model", ["edit", "{in}/wan.safetensors", "--image", "{in}/image.png", "--strength", "0.5", "--model",
                                 "tiny-random", "-o", OUT], 2, "the clip's latents (wan family) belong to another VAE than --model tiny-random", None, False),
    ("edit-seed-alone", ["edit", C, "--reverse", "--seed", "3", "-o", OUT], 2, "--seed applies only with --image", None, False),
    # --- direction
    ("direction-no-positives", ["direction", "--minus", C, "-o", OUT], 2, "missing argument 'POS...'", None, True),
    ("direction-no-negatives", ["direction", C, "-o", OUT], 2, "give the clips to subtract", None, False),
    ("direction-no-output", ["direction", C, "--minus", C], 2, "give -o", None, False),
    ("direction-stdin-twice", ["direction", "-", "--minus", "-", "-o", OUT], 2, "only once", b"", False),
    ("direction-garbage", ["direction", "{in}/garbage.safetensors", "--minus", C, "-o", OUT], 2, "not a readable safetensors file", None, False),
    ("direction-sizes-differ", ["direction", C, "--minus", "{in}/wide.safetensors", "-o", OUT], 2, "a direction needs clips of one size", None, False),
    ("direction-video-output", ["direction", C, "--minus", C, "-o", VIDEO_OUT], 2, "writes latents", None, False),
    ("direction-output-is-input", ["direction", C, "--minus", "{in}/one.safetensors", "-o", C], 2, "is the input", None, False),
    ("direction-output-is-a-folder", ["direction", C, "--minus", "{in}/one.safetensors", "-o", "{in}/folder.safetensors"], 2,
     "is a folder", None, False),
    ("direction-output-is-input-by-link", ["direction", C, "--minus", "{in}/one.safetensors", "-o", "{in}/link.safetensors"], 2,
     "is the input", None, True),
    ("direction-an-mp4", ["direction", "{in}/video.mp4", "--minus", C, "-o", OUT], 2, "is a video", None, False),
    # --- transfer-motion
    ("transfer-missing-motion", ["transfer-motion", "{in}/absent.safetensors", "{in}/image.png", "-o", OUT], 2, "no such file", None, False),
    ("transfer-missing-appearance", ["transfer-motion", C, "{in}/absent.png", "-o", OUT], 2, "no such file", None, False),
    ("transfer-appearance-txt", ["transfer-motion", C, "{in}/notes.txt", "-o", OUT], 2, "APPEARANCE must be an image", None, False),
    ("transfer-appearance-garbage", ["transfer-motion", C, "{in}/text.png", "-o", OUT], 2, "not a readable image", None, False),
    ("transfer-motion-garbage", ["transfer-motion", "{in}/garbage.safetensors", "{in}/image.png", "-o", OUT], 2, "not a readable safetensors file", None, False),
    ("transfer-refine-too-big", ["transfer-motion", C, "{in}/image.png", "--refine", "2", "-o", OUT], 2, "'--refine'", None, True),
    ("transfer-bad-method", ["transfer-motion", C, "{in}/image.png", "--method", "magic", "-o", OUT], 2, "'--method'", None, True),
    ("transfer-inversion-refine", ["transfer-motion", C, "{in}/image.png", "--method", "inversion", "--refine", "0.5", "-o", OUT], 2, "belong to --method residual", None, False),
    ("transfer-knobs-without-model", ["transfer-motion", C, "{in}/image.png", "--steps", "5", "-o", OUT], 2, "--steps applies only with --refine S", None, False),
    ("transfer-txt-output", ["transfer-motion", C, "{in}/image.png", "-o", "{out}/o.txt"], 2, "cannot write '.txt'", None, False),
    ("transfer-output-is-input-by-link", ["transfer-motion", C, "{in}/image.png", "-o", "{in}/link.safetensors"], 2,
     "is the input", None, True),
    ("transfer-no-appearance", ["transfer-motion", C], 2, "missing argument 'APPEARANCE'", None, True),
    ("transfer-wide-to-mp4", ["transfer-motion", "{in}/wide.safetensors", "{in}/image.png", "-o", VIDEO_OUT], 2, "at most 16384 px a side", None, False),
    # --- analyze
    ("analyze-missing", ["analyze", "{in}/absent.safetensors"], 2, "no such file", None, False),
    ("analyze-garbage", ["analyze", "{in}/garbage.safetensors"], 2, "not a readable safetensors file", None, False),
    ("analyze-an-mp4", ["analyze", "{in}/video.mp4"], 2, "is a video", None, False),
    ("analyze-pca-zero", ["analyze", C, "--pca", "0"], 2, "'--pca'", None, True),
    ("analyze-threshold-zero", ["analyze", C, "--static-threshold", "0"], 2, "'--static-threshold'", None, True),
    ("analyze-plot-jpg", ["analyze", C, "--plot", "{out}/p.jpg"], 2, "ending in .png", None, False),
    ("analyze-umap-alone", ["analyze", C, "--umap"], 2, "--umap draws into the --plot image", None, False),
    ("analyze-components-mp4", ["analyze", C, "--save-components", "{out}/c.mp4"], 2, "ending in .safetensors", None, False),
    ("analyze-one-frame", ["analyze", "{in}/one.safetensors"], 2, "at least 2 frames", None, False),
    ("analyze-a-direction", ["analyze", "{in}/direction.safetensors"], 2, "not a clip", None, False),
    ("analyze-stdin-twice", ["analyze", "-", "-"], 2, "more than once", b"", False),
    ("analyze-empty-stdin", ["analyze", "-"], 2, "is empty", b"", False),
    # --- convert
    ("convert-no-output", ["convert", C], 2, "give -o", None, False),
    ("convert-video-output", ["convert", C, "-o", VIDEO_OUT], 2, "convert writes latents", None, False),
    ("convert-missing", ["convert", "{in}/absent.safetensors", "-o", "{out}/o.latent"], 2, "no such file", None, False),
    ("convert-garbage", ["convert", "{in}/garbage.safetensors", "-o", "{out}/o.latent"], 2, "not a readable safetensors file", None, False),
    ("convert-bad-layout", ["convert", C, "--to", "onnx", "-o", OUT], 2, "'--to'", None, True),
    ("convert-output-is-input", ["convert", C, "-o", C], 2, "is the input", None, False),
    ("convert-empty-stdin", ["convert", "-", "-o", "{out}/o.latent"], 2, "is empty", b"", False),
    ("convert-an-mp4", ["convert", "{in}/video.mp4", "-o", "{out}/o.latent"], 2, "is a video", None, False),
    ("convert-output-is-a-folder", ["convert", C, "-o", "{in}/folder.safetensors"], 2, "is a folder", None, False),
    ("convert-output-is-input-by-link", ["convert", C, "-o", "{in}/link.safetensors"], 2, "is the input", None, True),
    ("convert-output-under-a-file", ["convert", C, "-o", "{in}/notes.txt/o.latent"], 1, "its folder cannot be made", None, False),
]


def _frame(path: Path, size: tuple[int, int]) -> None:
    Image.new("RGB", size, (120, 30, 200)).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, tiny_wan22: Path) -> Path:
    """Every bad (and good) input the cases refer to, in one folder that no case may change."""
    import torch

    folder = tmp_path_factory.mktemp("corpus-inputs")
    result = CliRunner().invoke(main, ["encode", str(data_file("bear.gif")), "--model", "tiny-random", "--frames", "4",
                                       "-o", str(folder / "clip.safetensors"), "-q"])
    assert result.exit_code == 0, result.output
    clip = latentfile.read(folder / "clip.safetensors")
    wan = CliRunner().invoke(main, ["encode", str(data_file("bear.gif")), "--model", "tiny-random-wan22", "--frames", "5",
                                    "-o", str(folder / "wan.safetensors"), "-q"])
    assert wan.exit_code == 0, wan.output
    latentfile.write(dataclasses.replace(clip, latents=clip.latents[:1].clone()), folder / "one.safetensors")
    latentfile.write(dataclasses.replace(clip, latents=torch.zeros(2, 4, 8, 3032), width=24256), folder / "wide.safetensors")
    direction = CliRunner().invoke(main, ["direction", str(folder / "clip.safetensors"), "--minus", str(folder / "one.safetensors"),
                                          "-o", str(folder / "direction.safetensors"), "-q"])
    assert direction.exit_code == 0, direction.output
    data = bytes(latentfile.to_bytes(clip))
    (folder / "truncated.safetensors").write_bytes(data[:-10])
    (folder / "header-cut.safetensors").write_bytes(data[:40])
    (folder / "huge-header.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    (folder / "garbage.safetensors").write_bytes(b"hello, this is not a latent file")
    (folder / "empty.safetensors").write_bytes(b"")
    _, metadata = latentfile.parse_safetensors(data, source="clip", expected="a latent file")
    latents = clip.latents.clone()
    latentfile.write(dataclasses.replace(clip, latents=clip.latents * 1e36), folder / "absurd.safetensors")  # finite, absurd
    latents[0, 0, 0, 0] = float("nan")
    (folder / "nan.safetensors").write_bytes(bytes(latentfile.safetensors_bytes({"latents": latents}, metadata)))
    (folder / "plain.safetensors").write_bytes(bytes(latentfile.safetensors_bytes({"x": torch.zeros(2)}, {})))
    shutil.copy(data_file("test_video1.mp4"), folder / "video.mp4")
    mp4 = data_file("test_video1.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])  # its index (moov) is at the end: gone
    (folder / "v.safetensors").write_bytes(b"not a video, but encode's default output would replace it")
    for name in ("text.mp4", "text.gif", "text.png"):
        (folder / name).write_text("this is text, whatever the name says\n" * 10)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("notes\n")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac",
                    str(folder / "audio.mp4")], check=True)
    _frame(folder / "image.png", (64, 64))
    _frame(folder / "wide.png", (10000, 10))
    (folder / "empty-folder").mkdir()
    (folder / "folder.safetensors").mkdir()  # a folder named as a file output
    (folder / "folder.mp4").mkdir()
    (folder / "link.safetensors").symlink_to(folder / "clip.safetensors")  # the input, by another name
    (folder / "image-link.png").symlink_to(folder / "image.png")
    (folder / "clips").mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        shutil.copy(folder / "clip.safetensors", folder / "clips" / name)
    (folder / "garbage-frames").mkdir()
    _frame(folder / "garbage-frames" / "frame1.png", (64, 64))
    (folder / "garbage-frames" / "frame2.png").write_text("not a picture")
    (folder / "mixed-frames").mkdir()
    _frame(folder / "mixed-frames" / "frame1.png", (64, 64))
    _frame(folder / "mixed-frames" / "frame2.png", (96, 64))
    if os.geteuid() != 0:
        (folder / "locked").mkdir(mode=0o500)
    return folder


def _snapshot(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*"))


def _expand(word: str, names: dict[str, str]) -> str:
    return word.replace("{in}", names["in"]).replace("{out}", names["out"]).replace("{{", "{").replace("}}", "}")


def _stdin(value: bytes | str | None, inputs: Path) -> bytes | None:
    named = {"{clip}": inputs / "clip.safetensors", "{truncated}": inputs / "truncated.safetensors"}
    return named[value].read_bytes() if isinstance(value, str) else value


def test_the_corpus_is_large_and_covers_every_command() -> None:
    from vidlatent.cli import COMMANDS

    assert len(CASES) >= 100 and len({case[0] for case in CASES}) == len(CASES)
    assert set(COMMANDS) <= {case[1][0] for case in CASES}


@pytest.mark.parametrize("name, args, code, fragment, stdin, fast", CASES, ids=[case[0] for case in CASES])
def test_bad_input(inputs: Path, tmp_path: Path, name: str, args: list[str], code: int, fragment: str,
                   stdin: bytes | str | None, fast: bool) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "busy").mkdir()
    (out / "busy" / "keep.txt").write_text("not a frame")
    before, inputs_before = _snapshot(out), _snapshot(inputs)
    words = [_expand(word, {"in": str(inputs), "out": str(out)}) for word in args]
    result = CliRunner().invoke(main, words, input=_stdin(stdin, inputs))
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidlatent: error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert _snapshot(out) == before  # no partial file, no new folder
    assert _snapshot(inputs) == inputs_before  # no input touched


FAST_CASES = [case for case in CASES if case[5]]


def test_usage_errors_come_before_torch(inputs: Path, tmp_path: Path) -> None:
    """The FAST cases, run in one process where `import torch` fails: each still ends with its own
    one-line error, so none of them waited for torch to load."""
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("not a frame")
    cases = [[_expand(word, {"in": str(inputs), "out": str(tmp_path)}) for word in case[1]] for case in FAST_CASES]
    script = (
        "import json, sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "from click.testing import CliRunner\n"
        "from vidlatent.cli import main\n"
        "results = [(r.exit_code, r.stderr) for r in (CliRunner().invoke(main, args) for args in json.loads(sys.argv[1]))]\n"
        "print(json.dumps(results))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    for case, (code, stderr) in zip(FAST_CASES, json.loads(run.stdout)):
        assert (code, case[3] in stderr, stderr.count("\n")) == (case[2], True, 1), (case[0], stderr)


@pytest.mark.parametrize("args, stream", [
    (["decode", "{in}/garbage.safetensors", "-o", "{out}/o.mp4"], "stdout"),
    (["edit", "{in}/clip.safetensors", "--trim", "9:10", "-o", "-"], "stderr"),
    (["generate", "{in}/image.png", "--num-videos", "0"], "stdout"),
])
def test_json_failure_object(inputs: Path, tmp_path: Path, args: list[str], stream: str) -> None:
    """With --json a failure prints one JSON object where the summary would have gone (docs/json.md)."""
    words = [_expand(word, {"in": str(inputs), "out": str(tmp_path)}) for word in args]
    result = CliRunner().invoke(main, [*words, "--json"])
    text = result.stdout if stream == "stdout" else result.stderr.splitlines()[-1]
    failure = json.loads(text)
    assert failure["status"] == "error" and failure["exit_code"] == result.exit_code == 2
    assert failure["command"] == args[0]
    assert result.stderr.splitlines()[0] == f"vidlatent: error: {failure['error']}"
    if stream == "stderr":
        assert result.stdout == ""  # stdout was for latents: nothing there
