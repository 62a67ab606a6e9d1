"""Section 10, the plan's calibration: the peak host memory (RSS) that ``vidlatent plan``
predicts for a ``generate`` run against what the same run, in a fresh process, measures.

Tiny Wan, LTX-Video and SVD models on the CPU at three sizes each, two steps, written to mp4
(so the decode is measured too). On a CPU every weight and activation is host memory, so the
prediction is the plan's host peak; each run is its own process (the launcher's ``wait4``
peak), so nothing of this process is counted. Goal: within ±25 %.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.harness import Goal, Row, conditioning_image, mebibytes, progress, run_process

if TYPE_CHECKING:
    from benchmarks.cases import Context

STEPS = 2
SEED = 1
# model -> (width, height, frames) at three sizes: the small end (weights and the runtime), the
# middle and the large end (activations: attention scores, the VAE's working memory).
CASES = {
    "tiny-random-wan": ((64, 64, 9), (256, 256, 17), (384, 384, 25)),
    "tiny-random-ltx": ((64, 64, 9), (256, 256, 17), (512, 512, 33)),
    "tiny-random": ((64, 64, 6), (128, 128, 14), (256, 256, 14)),
}
BAND = Goal(1.25, floor=0.75)
WHAT = "peak RSS of `generate` ({model}, {width}x{height}, {frames} frames, CPU): `plan`'s prediction / measured"


def rows_declared() -> list[tuple[str, str]]:
    """The rows' keys and descriptions, in order (10a, 10b, ...)."""
    cases = [(model, *case) for model, sizes in CASES.items() for case in sizes]
    return [(f"10{chr(ord('a') + index)}", WHAT.format(model=model, width=width, height=height, frames=frames))
            for index, (model, width, height, frames) in enumerate(cases)]


def plan_memory(ctx: Context) -> list[Row]:
    from vidlatent import planning
    from vidlatent.models import LoadOptions

    rows = []
    above: list[str] = []  # at each model's largest size: the part above the runtime, predicted / measured
    declared = iter(rows_declared())
    for model, sizes in CASES.items():
        for index, (width, height, frames) in enumerate(sizes):
            key, what = next(declared)
            if index >= ctx.config.plan_sizes:
                rows.append(Row(key, what, status=f"not run ({ctx.config.name})"))
                continue
            image = conditioning_image((width, height), ctx.workdir / f"plan-{width}x{height}.png")
            request = planning.Request(load=LoadOptions(model=model, device="cpu"), size=(width, height), frames=frames,
                                       steps=STEPS)
            predicted = planning.plan(request).peak_host
            out = ctx.workdir / f"plan-{model}-{width}.mp4"
            run = run_process(ctx.cli("generate", str(image), "--model", model, "--size", f"{width}x{height}", "--frames",
                                      str(frames), "--steps", str(STEPS), "--seed", str(SEED), "--device", "cpu", "-q",
                                      "-o", str(out)), env=ctx.env)
            progress(f"  {model} {width}x{height} {frames} frames: predicted {mebibytes(predicted)}, "
                     f"measured {mebibytes(run.peak_rss)}")
            rows.append(Row(key, what, value=mebibytes(predicted), baseline=mebibytes(run.peak_rss),
                            ratio=predicted / run.peak_rss, goal=BAND))
            if index == len(sizes) - 1 and run.peak_rss > planning.RUNTIME_HOST_BYTES:
                runtime = planning.RUNTIME_HOST_BYTES
                above.append(f"{key} {(predicted - runtime) / (run.peak_rss - runtime):.2f}")
    missed = [row for row in rows if row.ratio is not None and not BAND.met(row.ratio)]
    if rows and rows[0].ratio is not None:
        rows[0].note = ("Predicted from the architecture on the meta device (no weights read), with the constants of "
                        "vidlatent/planning.py and the families' decode_work; measured as the peak RSS of a fresh "
                        f"`vidlatent generate` process ({STEPS} steps, mp4 out, the launcher's wait4).")
        if above:
            rows[0].note += (f" The runtime (Python with torch, diffusers and transformers: "
                             f"{mebibytes(planning.RUNTIME_HOST_BYTES)} in the plan) is most of a tiny model's memory; the "
                             "part above it (activations, the VAE's working memory), predicted / measured, at each "
                             "model's largest size: " + ", ".join(above) + ".")
        if missed:
            rows[0].why = "The plan's activation or decode estimate is off at " + ", ".join(row.key for row in missed)
    return rows
