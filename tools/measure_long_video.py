"""Measure three ways to a long video side by side, with ``analyze --seams``' numbers, on the tiny
random models: SkyReels DF native long generate (windows), SkyReels DF extend (its video-to-video
pipeline) and Wan's pinned-overlap extend with drift correction.

    python tools/measure_long_video.py [--seeds 3] [--steps 4]

Every way makes a 41-frame (11 latent frames) 64x64 clip with two joins: DF native in 17-frame
windows with a 5-frame history; DF extend and Wan extend a 17-frame clip twice by 12 frames (DF:
17-frame segments whose first 5 frames are the history; Wan: 13-frame segments, one pinned
overlap frame). Seam: the latent step into each join divided by the clip's median step (1 = a join
that moves as the clip does; ``analysis.measure_seams``). Drift: the largest per-channel mean
offset (in the first segment's channel stds) and std ratio - 1 of the last segment against the
first. The models are random: the numbers show the mechanics (plumbing), not picture quality.
"""

from __future__ import annotations

import argparse
import statistics


def main() -> None:
    from vidlatent import analysis, media
    from vidlatent.generation import ExtendOptions, Knobs, extend, generate
    from vidlatent.models import LoadOptions, load_pipeline

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    arguments = parser.parse_args()
    prompt, size = "a bear walks", (64, 64)
    steps = arguments.steps
    df_text = load_pipeline(LoadOptions(model="tiny-random-skyreels-df"), image=False)
    wan = load_pipeline(LoadOptions(model="tiny-random-wan"))
    image = media.load_image("../shared/data/test_image.png")

    def df_native(seed: int):  # type: ignore[no-untyped-def]
        return generate(df_text, None, knobs=Knobs(prompt=prompt, frames=41, window=17, history=5, steps=steps), seed=seed,
                        size=size)

    def df_extend(seed: int, correction: bool):  # type: ignore[no-untyped-def]
        clip = generate(df_text, None, knobs=Knobs(prompt=prompt, frames=17, steps=steps), seed=seed, size=size)
        return extend(df_text, clip, knobs=Knobs(prompt=prompt, frames=17, history=5, steps=steps),
                      options=ExtendOptions(times=2, drift_correction=correction), seed=seed + 100)

    def wan_extend(seed: int):  # type: ignore[no-untyped-def]
        clip = generate(wan, image, knobs=Knobs(prompt=prompt, frames=17, steps=steps), seed=seed, size=size)
        return extend(wan, clip, knobs=Knobs(prompt=prompt, frames=13, steps=steps), options=ExtendOptions(times=2, overlap=1),
                      seed=seed + 100)

    ways = {
        "SkyReels DF native (17-frame windows, history 5)": df_native,
        "SkyReels DF extend (V2V, history 5), drift correction off": lambda seed: df_extend(seed, False),
        "SkyReels DF extend (V2V, history 5), drift correction on": lambda seed: df_extend(seed, True),
        "Wan extend (pinned overlap 1), drift correction on": wan_extend,
    }
    print("| way | frames | seam step / median step (each join) | last segment drift: mean, std ratio - 1 |")
    print("|---|---|---|---|")
    for name, make in ways.items():
        seams, means, ratios, frames = [], [], [], 0
        for seed in range(arguments.seeds):
            clip = make(seed)
            frames = clip.pixel_frames
            measured = analysis.measure_seams(clip.latents, analysis.history_joins(clip.history, clip.frames,
                                                                                  clip.layout.frame_rule))
            seams.extend(seam.ratio for seam in measured.seams)
            means.append(measured.segments[-1].mean)
            ratios.append(measured.segments[-1].std_ratio)
        print(f"| {name} | {frames} | {statistics.mean(seams):.2f} (range {min(seams):.2f}-{max(seams):.2f}) | "
              f"{statistics.mean(means):.2f}, {statistics.mean(ratios):.2f} |")


if __name__ == "__main__":
    main()
