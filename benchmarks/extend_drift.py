"""``python -m benchmarks.extend_drift``: seams and drift of ``extend`` on the tiny Wan models.

Prints, for each tiny Wan model, the drift ``extend`` records before correction per segment,
the drift left after correction (against the band of ``latent_ops.NATURAL_DRIFT``), the seam step against the steps inside segments (mean
absolute pixel change between neighbouring frames), and how 8 last-frame round trips
(decode, encode, decode) move the mean colour and the contrast. The models have random
weights: these are plumbing numbers (docs/extend.md), not a judgement of real models.
"""

from __future__ import annotations

import numpy as np


def main() -> None:
    import torch
    from PIL import Image

    from vidlatent import codec, latent_ops
    from vidlatent.generation import ExtendOptions, Knobs, extend, generate
    from vidlatent.models import LoadOptions, load_pipeline

    cpu = torch.device("cpu")
    image = Image.open("../shared/data/test_image.png").convert("RGB")
    times, knobs = 4, Knobs(frames=9, steps=4, prompt="a bear")
    for name in ("tiny-random-wan", "tiny-random-wan22"):
        model = load_pipeline(LoadOptions(model=name))
        clip = generate(model, image, knobs=knobs, seed=1, size=(64, 64))
        reference = latent_ops.ChannelStats.of(clip.latents)
        for correct in (False, True):
            result = extend(model, clip, knobs=knobs, options=ExtendOptions(times=times, drift_correction=correct), seed=2)
            recorded = [(s["drift_before_correction"]["mean"], s["drift_before_correction"]["std_ratio"])
                        for s in result.history[-1]["arguments"]["segments"]]
            fresh = (result.frames - clip.frames) // times  # latent frames per segment
            left = [latent_ops.drift(result.latents[clip.frames + fresh * k : clip.frames + fresh * (k + 1)], reference,
                                     relative=True) for k in range(times)]
            frames = np.stack(list(codec.decode_frames(model.family, result.latents, model.vae, device=cpu))).astype(np.float64)
            steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # (frames - 1,)
            per_segment = model.layout.frame_rule.pixel_frames(fresh + 1) - 1
            seams = [clip.pixel_frames - 1 + per_segment * k for k in range(times)]
            print(f"{name}, {'with' if correct else 'without'} correction:")
            print("  drift before correction (mean, std ratio - 1):", [(round(m, 2), round(r, 2)) for m, r in recorded])
            print("  drift after (mean in the reference channel's stds, std ratio - 1):",
                  [(round(d.mean, 6), round(d.std_ratio, 6)) for d in left])
            print(f"  seam step {steps[seams].mean():.2f}, inner step {np.delete(steps, seams).mean():.2f} (of 255)")
        frame = list(codec.decode_frames(model.family, clip.latents, model.vae, device=cpu))[-1]
        start = frame.astype(np.float64)
        for _ in range(8):
            frame = next(codec.decode_frames(model.family, model.family.encode_frames([frame], model.vae, device=cpu), model.vae, device=cpu))
        end = frame.astype(np.float64)
        print(f"{name}, 8 last-frame round trips: mean colour {start.mean(axis=(0, 1)).round(1)} -> {end.mean(axis=(0, 1)).round(1)}, "
              f"contrast (std) {start.std():.1f} -> {end.std():.1f}")


if __name__ == "__main__":
    main()
