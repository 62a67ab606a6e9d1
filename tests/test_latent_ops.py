"""Properties of the pure latent math in vidlatent.latent_ops, over random clips and seeds."""

from __future__ import annotations

import math

import pytest
import torch

from vidlatent import latent_ops

SEEDS = range(6)
METHODS = tuple(latent_ops.METHODS)


def random_clip(seed: int, frames: int = 5, shape: tuple[int, int, int] = (4, 6, 8)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((frames, *shape), generator=generator)


def frame_norms(clip: torch.Tensor) -> torch.Tensor:
    return clip.double().flatten(1).norm(dim=1)


def random_weights(seed: int, frames: int) -> torch.Tensor:
    return torch.rand(frames, generator=torch.Generator().manual_seed(seed + 100), dtype=torch.float64)


# --- endpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", SEEDS)
def test_endpoints_are_returned_exactly(method, seed):
    a, b = random_clip(seed), random_clip(seed + 1000)
    assert torch.equal(latent_ops.blend(a, b, 0.0, method), a)
    assert torch.equal(latent_ops.blend(a, b, 1.0, method), b)
    # Per-frame weights: frames at 0 are a's, at 1 b's, whatever the other frames do.
    mixed = latent_ops.blend(a, b, torch.tensor([0.0, 1.0, 0.3, 0.0, 1.0]), method)
    assert torch.equal(mixed[[0, 3]], a[[0, 3]]) and torch.equal(mixed[[1, 4]], b[[1, 4]])


@pytest.mark.parametrize("method", METHODS)
def test_blend_of_a_clip_with_itself_is_the_clip(method):
    a = random_clip(3)
    assert torch.allclose(latent_ops.blend(a, a, 0.37, method), a, atol=1e-6)


def test_per_frame_weights_equal_blending_each_frame_alone():
    a, b = random_clip(1), random_clip(2)
    weights = random_weights(1, 5)
    together = latent_ops.slerp(a, b, weights)
    for index in range(5):
        alone = latent_ops.slerp(a[index : index + 1], b[index : index + 1], float(weights[index]))
        assert torch.equal(together[index : index + 1], alone)


def test_lerp_is_the_straight_line():
    a, b = random_clip(1), random_clip(2)
    expected = (a.double() * 0.75 + b.double() * 0.25).float()
    assert torch.allclose(latent_ops.lerp(a, b, 0.25), expected, atol=1e-6)


def test_blends_refuse_mismatched_shapes_and_weights():
    with pytest.raises(ValueError, match="shapes"):
        latent_ops.lerp(random_clip(1), random_clip(2, frames=4), 0.5)
    with pytest.raises(ValueError, match="weights"):
        latent_ops.slerp(random_clip(1), random_clip(2), torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="unknown method"):
        latent_ops.blend(random_clip(1), random_clip(2), 0.5, "cubic")


# --- SLERP ----------------------------------------------------------------------------------------


def with_norms_of(clip: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    return (clip.double() / frame_norms(clip)[:, None, None, None] * norms[:, None, None, None]).float()


@pytest.mark.parametrize("seed", SEEDS)
def test_slerp_preserves_norms_of_equal_norm_inputs(seed):
    a = random_clip(seed)
    b = with_norms_of(random_clip(seed + 1000), frame_norms(a))
    for weight in (0.1, 0.5, 0.9, random_weights(seed, 5)):
        result = latent_ops.slerp(a, b, weight)
        assert torch.allclose(frame_norms(result), frame_norms(a), rtol=1e-6)
    # LERP, for contrast, loses norm at the middle of two unrelated frames: that is why SLERP is the default.
    assert (frame_norms(latent_ops.lerp(a, b, 0.5)) < 0.8 * frame_norms(a)).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_slerp_moves_at_constant_angular_speed(seed):
    a = random_clip(seed, frames=1)
    b = with_norms_of(random_clip(seed + 1000, frames=1), frame_norms(a))

    def angle(x: torch.Tensor, y: torch.Tensor) -> float:
        x, y = x.double().flatten(), y.double().flatten()
        return math.acos(float((x @ y) / (x.norm() * y.norm())))

    total = angle(a, b)
    for weight in (0.25, 0.5, 0.8):
        middle = latent_ops.slerp(a, b, weight)
        assert angle(a, middle) == pytest.approx(weight * total, abs=1e-5)
        assert angle(middle, b) == pytest.approx((1 - weight) * total, abs=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_slerp_of_nearly_parallel_frames_is_finite_and_near_lerp(seed):
    a = random_clip(seed)
    b = a * 1.0000001 + 1e-9 * random_clip(seed + 1)  # same direction up to rounding
    for weight in (0.3, 0.5):
        result = latent_ops.slerp(a, b, weight)
        assert torch.isfinite(result).all()
        assert torch.allclose(result, latent_ops.lerp(a, b, weight), atol=1e-6)
    # Exactly parallel, different norms: the LERP fallback moves the norm linearly.
    scaled = latent_ops.slerp(a, 3 * a, 0.5)
    assert torch.allclose(scaled, 2 * a, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_slerp_of_opposite_frames_turns_through_a_fixed_orthogonal_direction(seed):
    a = random_clip(seed)
    middle = latent_ops.slerp(a, -a, 0.5)
    assert torch.isfinite(middle).all()
    assert torch.allclose(frame_norms(middle), frame_norms(a), rtol=1e-6)  # LERP would give zero here
    cosines = (middle.double().flatten(1) * a.double().flatten(1)).sum(1) / frame_norms(a) ** 2
    assert torch.allclose(cosines, torch.zeros(5, dtype=torch.float64), atol=1e-6)  # a quarter turn at t = 0.5
    assert torch.equal(latent_ops.slerp(a, -a, 0.5), middle)  # the same every time
    quarter = latent_ops.slerp(a, -a, 0.25)
    assert torch.allclose(frame_norms(quarter), frame_norms(a), rtol=1e-6)


def test_slerp_with_a_zero_frame_falls_back_to_lerp():
    a = random_clip(1)
    zero = torch.zeros_like(a)
    assert torch.allclose(latent_ops.slerp(a, zero, 0.25), 0.75 * a, atol=1e-6)


# --- hybrid ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_hybrid_slerps_the_channel_means_and_lerps_the_detail(seed):
    a, b = random_clip(seed) + 2.0, random_clip(seed + 1000) - 1.0
    weight = 0.4
    result = latent_ops.hybrid(a, b, weight)
    mean_a, mean_b = a.mean(dim=(2, 3), keepdim=True), b.mean(dim=(2, 3), keepdim=True)
    coarse = result.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(coarse, latent_ops.slerp(mean_a, mean_b, weight), atol=1e-5)
    assert torch.allclose(result - coarse, latent_ops.lerp(a - mean_a, b - mean_b, weight), atol=1e-5)


# --- time --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_upsampling_keeps_the_originals_exactly_at_their_positions(method, factor, frames):
    clip = random_clip(frames * 10 + factor, frames=frames)
    for loop in (False, True):
        result = latent_ops.upsample(clip, factor, method, loop=loop)
        assert result.shape[0] == latent_ops.upsampled_length(frames, factor, loop=loop)
        assert result.shape[0] == (frames * factor if loop else (frames - 1) * factor + 1)
        assert torch.equal(result[::factor][:frames], clip)
        assert torch.isfinite(result).all()


def test_upsampled_frames_are_the_blends_of_their_neighbours():
    clip = random_clip(7, frames=3)
    result = latent_ops.upsample(clip, 4, "lerp", loop=True)
    assert result.shape[0] == 12
    for gap, (first, last) in enumerate([(0, 1), (1, 2), (2, 0)]):
        for step in (1, 2, 3):
            expected = latent_ops.lerp(clip[first : first + 1], clip[last : last + 1], step / 4)
            assert torch.equal(result[gap * 4 + step : gap * 4 + step + 1], expected)


def test_factor_two_gives_two_f_minus_one_frames_and_two_f_with_loop():
    clip = random_clip(1, frames=6)
    assert latent_ops.upsample(clip, 2).shape[0] == 11
    assert latent_ops.upsample(clip, 2, loop=True).shape[0] == 12


@pytest.mark.parametrize("frames", [1, 3, 7])
def test_retime_keeps_the_first_and_last_frames(frames):
    clip = random_clip(frames, frames=5)
    result = latent_ops.retime(clip, frames)
    assert result.shape[0] == frames
    assert torch.equal(result[0], clip[0])
    if frames > 1:
        assert torch.equal(result[-1], clip[-1])
    assert torch.equal(latent_ops.retime(clip, 9, "lerp")[::2], clip)  # 5 -> 9: the originals at even positions


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5, 10.0])
def test_smoothing_a_constant_clip_is_the_identity(seed, sigma):
    frame = random_clip(seed, frames=1)
    clip = frame.expand(7, -1, -1, -1).contiguous()
    assert torch.equal(latent_ops.smooth(clip, sigma), clip)


def test_smoothing_is_a_normalised_gaussian_average():
    clip = random_clip(3, frames=6)
    assert torch.equal(latent_ops.smooth(clip, 0), clip)
    result = latent_ops.smooth(clip, 1.0)
    weights = torch.tensor([math.exp(-(offset**2) / 2) for offset in range(-3, 4)], dtype=torch.float64)
    middle = sum(w * clip[3 + offset].double() for w, offset in zip(weights[1:6], range(-2, 3)))  # frame 3: offsets -3..2 exist
    middle = middle + weights[0] * clip[0].double()
    assert torch.allclose(result[3].double(), middle / weights[:6].sum(), atol=1e-6)
    assert result.std(dim=0).mean() < clip.std(dim=0).mean()  # it does smooth


@pytest.mark.parametrize("seed", SEEDS)
def test_reverse_twice_is_the_identity(seed):
    clip = random_clip(seed, frames=seed + 1)
    assert torch.equal(latent_ops.reverse(latent_ops.reverse(clip)), clip)
    assert torch.equal(latent_ops.reverse(clip)[0], clip[-1])


def test_trim_keeps_the_range_and_refuses_an_empty_one():
    clip = random_clip(1, frames=6)
    assert torch.equal(latent_ops.trim(clip, 1, 4), clip[1:4])
    for start, end in [(3, 3), (-1, 2), (2, 7)]:
        with pytest.raises(ValueError, match="trim"):
            latent_ops.trim(clip, start, end)


def test_crossfade_loop_blends_the_tail_into_the_head():
    clip = random_clip(4, frames=8)
    result = latent_ops.crossfade_loop(clip, 2)
    assert result.shape[0] == 6
    assert torch.equal(result[2:], clip[2:6])  # the middle is untouched
    assert torch.equal(result[:1], latent_ops.lerp(clip[6:7], clip[:1], 1 / 3))
    assert torch.equal(result[1:2], latent_ops.lerp(clip[7:8], clip[1:2], 2 / 3))
    with pytest.raises(ValueError, match="crossfade"):
        latent_ops.crossfade_loop(clip, 5)


def test_frames_between_excludes_both_ends():
    first, last = random_clip(1, frames=1)[0], random_clip(2, frames=1)[0]
    between = latent_ops.frames_between(first, last, 3, "lerp")
    expected = latent_ops.lerp(first.expand(3, -1, -1, -1), last.expand(3, -1, -1, -1), torch.tensor([0.25, 0.5, 0.75]))
    assert torch.equal(between, expected)


# --- arithmetic ----------------------------------------------------------------------------------------


def test_direction_is_the_difference_of_mean_frames_and_adds_back():
    positives = [random_clip(1, frames=3), random_clip(2, frames=5)]
    negatives = [random_clip(3, frames=4)]
    direction = latent_ops.direction(positives, negatives)
    assert direction.shape == (1, 4, 6, 8)
    expected = (positives[0].double().mean(0) + positives[1].double().mean(0)) / 2 - negatives[0].double().mean(0)
    assert torch.allclose(direction[0].double(), expected, atol=1e-6)
    clip = random_clip(9)
    assert torch.equal(latent_ops.add_direction(clip, direction, 0.0), clip)
    assert torch.allclose(latent_ops.add_direction(clip, direction, 2.0), clip + 2 * direction, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        latent_ops.add_direction(clip, direction[:, :2], 1.0)


def test_latent_ops_imports_no_model_code():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(latent_ops))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "math", "dataclasses", "torch"}, imported
