"""vidlatent's benchmarks: what the tool costs on top of diffusers, measured side by side.

Run ``python -m benchmarks`` from the repository root (``--help`` for the options). Every
figure is a ratio against a reference measured in the same run, interleaved with it, as a
median over several repetitions after a warm-up: absolute times on a shared machine drift, the
ratio of two things measured together much less. The full run prints the table and writes it,
with the machine and versions, to BENCHMARKS.md.

Nothing here is imported by vidlatent, and nothing here is a timed test.
"""
