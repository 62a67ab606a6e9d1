"""Measure LTX extend's seam and drift: native video conditioning (the clip's last 9 frames,
--overlap 2) against its last frame alone (--overlap 1), on tiny-random-ltx; both add 16 frames
per segment.

    python tools/measure_ltx_extend.py [--seeds 5] [--times 3]

Seam: the RMS difference between the clip's last pixel frame and the first new one, divided by
the clip's own mean RMS difference between neighbouring frames (1 = a seam no bigger than an
ordinary frame step). The same ratio in latent frames. Drift: per segment, before drift
correction, the largest per-channel mean offset and std ratio from the first segment (as extend
records them). The tiny model is random: the numbers show the mechanics, not picture quality.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import numpy as np


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def main() -> None:
    import torch

    from vidlatent import codec, media
    from vidlatent.generation import ExtendOptions, Knobs, extend, generate
    from vidlatent.models import LoadOptions, load_pipeline

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    arguments = parser.parse_args()
    model = load_pipeline(LoadOptions(model="tiny-random-ltx"))
    image = media.load_image("../shared/data/test_image.png")
    knobs = Knobs(frames=17, steps=arguments.steps, prompt="a bear walks")
    # Both ways add 16 new frames (2 latent frames) per segment: 17-frame segments after one
    # conditioning frame, 25-frame segments after nine.
    segment_frames = {1: 17, 2: 25}
    device = torch.device("cpu")
    results: dict[int, dict[str, list[float]]] = {}
    for overlap in (1, 2):
        found: dict[str, list[float]] = {"pixel seam": [], "latent seam": [], "drift mean": [], "drift std ratio": []}
        for seed in range(arguments.seeds):
            clip = generate(model, image, knobs=knobs, seed=seed, size=(64, 64))
            segment = dataclasses.replace(knobs, frames=segment_frames[overlap])
            long = extend(model, clip, knobs=segment, options=ExtendOptions(times=arguments.times, overlap=overlap,
                                                                          drift_correction=False), seed=seed + 100)
            frames = list(codec.decode_frames(model.family, long.latents, model.vae, device=device))
            steps = [rms(a, b) for a, b in zip(frames[: clip.pixel_frames - 1], frames[1 : clip.pixel_frames])]
            seam = clip.pixel_frames - 1
            found["pixel seam"].append(rms(frames[seam], frames[seam + 1]) / statistics.mean(steps))
            latent = long.latents.numpy()
            latent_steps = [rms(latent[i], latent[i + 1]) for i in range(clip.frames - 1)]
            found["latent seam"].append(rms(latent[clip.frames - 1], latent[clip.frames]) / statistics.mean(latent_steps))
            for segment in long.history[-1]["arguments"]["segments"]:
                found["drift mean"].append(abs(segment["drift_before_correction"]["mean"]))
                found["drift std ratio"].append(segment["drift_before_correction"]["std_ratio"])
        results[overlap] = found
    print(f"tiny-random-ltx, 64x64, a 17-frame clip + 16 frames a segment, {arguments.steps} steps, {arguments.seeds} seeds, "
          f"--times {arguments.times}, drift correction off; mean (min-max)")
    for overlap, found in results.items():
        name = "native: last 9 frames (--overlap 2)" if overlap == 2 else "last frame (--overlap 1)"
        cells = ", ".join(f"{key} {statistics.mean(v):.3f} ({min(v):.3f}-{max(v):.3f})" for key, v in found.items())
        print(f"{name}: {cells}")


if __name__ == "__main__":
    main()
