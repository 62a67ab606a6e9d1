"""codec: chunked VAE encode/decode agrees bit for bit with diffusers' StableVideoDiffusionPipeline.

The reference is the pipeline itself, loaded from the tiny-random folder: its ``decode_latents``
followed by its video processor's PIL post-processing, and its video processor's
pre-processing followed by ``vae.encode``. vidlatent's side loads the VAE through the model
loader (vidlatent.models.load_vae), so the loader path is covered too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import data_file
from vidlatent import codec, media
from vidlatent.families import svd
from vidlatent.models import LoadOptions, load_vae

CPU = torch.device("cpu")
FRAMES = 6
SIZE = 64  # pixels; latents are SIZE / 8


@pytest.fixture(scope="module")
def vae(tiny_model):
    loaded = load_vae(LoadOptions(model=str(tiny_model)))
    assert loaded.device == CPU and loaded.dtype == torch.float32
    return loaded.vae


@pytest.fixture(scope="module")
def pipe(reference):
    return reference


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(FRAMES, 4, SIZE // 8, SIZE // 8, generator=generator)  # (F, C, h, w)


@pytest.fixture(scope="module")
def video_frames() -> list[np.ndarray]:
    path = data_file("test_video1.mp4")
    frames = list(media.iter_frames(path, media.FrameSelection(frames=5), size=(SIZE, SIZE)))
    assert len(frames) == 5
    assert all(frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 for frame in frames)
    return frames


def reference_decode(pipe, latents: torch.Tensor, chunk: int) -> np.ndarray:
    """What the pipeline makes of (F, C, h, w) latents: (F, H, W, 3) uint8 via its PIL output."""
    with torch.no_grad():
        video = pipe.decode_latents(latents[None], num_frames=latents.shape[0], decode_chunk_size=chunk)
    (pil_frames,) = pipe.video_processor.postprocess_video(video=video, output_type="pil")
    assert len(pil_frames) == latents.shape[0]
    return np.stack([np.array(frame) for frame in pil_frames])


@pytest.mark.parametrize("chunk", [1, 3, FRAMES])
def test_decode_matches_pipeline_bit_for_bit(vae, pipe, latents, chunk):
    ours = np.stack(list(codec.decode_frames(svd.FAMILY, latents, vae, device=CPU, chunk=chunk)))
    reference = reference_decode(pipe, latents, chunk)
    assert ours.shape == (FRAMES, SIZE, SIZE, 3)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, reference)
    # Random weights still give a picture with some range, so the equality is not trivial.
    assert ours.std() > 1.0


def test_decode_chunk_size_changes_the_temporal_window(vae, latents):
    # The temporal decoder mixes frames within a chunk, so chunking is not a no-op; the
    # bit-exact checks above are therefore per chunk size, not one answer for all.
    whole = np.stack(list(codec.decode_frames(svd.FAMILY, latents, vae, device=CPU, chunk=FRAMES)))
    single = np.stack(list(codec.decode_frames(svd.FAMILY, latents, vae, device=CPU, chunk=1)))
    assert not np.array_equal(whole, single)


def test_decode_is_a_generator_that_streams(vae, latents, monkeypatch):
    calls: list[int] = []
    decode = vae.decode

    def counting_decode(*args, **kwargs):
        calls.append(kwargs.get("num_frames", -1))
        return decode(*args, **kwargs)

    monkeypatch.setattr(vae, "decode", counting_decode)
    frames = codec.decode_frames(svd.FAMILY, latents, vae, device=CPU, chunk=2)
    assert calls == []  # nothing runs before the first frame is asked for
    first = next(frames)
    assert first.shape == (SIZE, SIZE, 3)
    assert calls == [2]
    second = next(frames)
    assert calls == [2]  # the second frame comes from the same chunk
    third = next(frames)
    assert calls == [2, 2]
    rest = list(frames)
    assert calls == [2, 2, 2]
    assert len(rest) == FRAMES - 3
    monkeypatch.undo()
    expected = np.stack(list(codec.decode_frames(svd.FAMILY, latents, vae, device=CPU, chunk=2)))
    np.testing.assert_array_equal(np.stack([first, second, third, *rest]), expected)


def test_decode_last_chunk_may_be_short(vae, pipe, latents):
    # F=6 with chunk=4: chunks of 4 and 2, as the pipeline's decode_latents does.
    ours = np.stack(list(codec.decode_frames(svd.FAMILY, latents, vae, device=CPU, chunk=4)))
    np.testing.assert_array_equal(ours, reference_decode(pipe, latents, 4))


def reference_encode(pipe, frames: list[np.ndarray], chunk: int) -> torch.Tensor:
    """The pipeline's pre-processing and ``vae.encode(...).latent_dist.mode() * scaling_factor``.

    Frames go to the VAE in the same groups of ``chunk`` as encode_frames sends them: PyTorch's
    CPU convolutions are not bit-identical across batch sizes (the 3-channel conv_in differs in
    the last bits between a batch of 1 and of 5), so only equal batches can agree bit for bit.
    """
    images = [Image.fromarray(frame) for frame in frames]
    pixels = pipe.video_processor.preprocess(images, height=SIZE, width=SIZE)  # (N, 3, H, W)
    assert pixels.shape == (len(frames), 3, SIZE, SIZE)
    parts = []
    with torch.no_grad():
        for start in range(0, len(frames), chunk):
            group = pixels[start : start + chunk]
            parts.append(pipe.vae.encode(group).latent_dist.mode() * pipe.vae.config.scaling_factor)
    return torch.cat(parts)


@pytest.mark.parametrize("chunk", [1, 2, 5, 8])
def test_encode_matches_pipeline_bit_for_bit(vae, pipe, video_frames, chunk):
    ours = svd.encode_frames(iter(video_frames), vae, device=CPU, chunk=chunk)
    reference = reference_encode(pipe, video_frames, chunk)
    assert ours.shape == (5, 4, SIZE // 8, SIZE // 8)
    assert ours.dtype == torch.float32
    assert ours.device == CPU
    assert torch.equal(ours, reference)
    assert ours.std() > 0


def test_encode_whole_batch_matches_pipeline_on_all_frames_at_once(vae, pipe, video_frames):
    # chunk >= the frame count is exactly the pipeline's one-batch encode of the whole clip.
    images = [Image.fromarray(frame) for frame in video_frames]
    with torch.no_grad():
        pixels = pipe.video_processor.preprocess(images, height=SIZE, width=SIZE)
        reference = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    assert torch.equal(svd.encode_frames(iter(video_frames), vae, device=CPU, chunk=len(video_frames)), reference)


def test_encode_is_independent_of_chunk_size(vae, video_frames):
    # The encoder is per-frame, so chunking changes nothing but float rounding in PyTorch's
    # batch-size dependent CPU kernels (observed: ~1e-5 on latents of magnitude ~0.2).
    results = [svd.encode_frames(iter(video_frames), vae, device=CPU, chunk=chunk) for chunk in (1, 2, 3, 5)]
    for result in results[1:]:
        torch.testing.assert_close(result, results[0], rtol=0, atol=1e-4)
    # ...while a different frame order would move the latents by far more than that.
    swapped = svd.encode_frames(iter(video_frames[::-1]), vae, device=CPU, chunk=5)
    assert (swapped - results[0]).abs().max() > 1e-2


def test_encode_reports_progress_and_is_deterministic(vae, video_frames):
    done: list[int] = []
    first = svd.encode_frames(iter(video_frames), vae, device=CPU, chunk=2, progress=done.append)
    assert done == [2, 4, 5]
    assert torch.equal(first, svd.encode_frames(iter(video_frames), vae, device=CPU, chunk=2))


def test_encode_rejects_no_frames(vae):
    with pytest.raises(ValueError, match="no frames"):
        svd.encode_frames(iter([]), vae, device=CPU)


def test_pixels_to_tensor_matches_pipeline_preprocessing(pipe, video_frames):
    ours = codec.pixels_to_tensor(video_frames)
    reference = pipe.video_processor.preprocess([Image.fromarray(f) for f in video_frames], height=SIZE, width=SIZE)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, reference)


def test_pixels_tensor_round_trip_is_exact_on_all_uint8_values():
    values = np.arange(256, dtype=np.uint8)
    frame = np.stack([values.reshape(16, 16), values[::-1].reshape(16, 16), np.roll(values, 7).reshape(16, 16)], -1)
    frames = [frame, 255 - frame]
    tensor = codec.pixels_to_tensor(frames)
    assert tensor.shape == (2, 3, 16, 16)
    assert float(tensor.min()) == -1.0 and float(tensor.max()) == 1.0
    back = codec.tensor_to_pixels(tensor)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, np.stack(frames))


def test_tensor_to_pixels_clamps_and_rounds():
    images = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 5).expand(1, 3, 1, 5)
    pixels = codec.tensor_to_pixels(images)
    assert pixels.shape == (1, 1, 5, 3)
    # 0.0 maps to 127.5, which rounds half to even: 128.
    assert pixels[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]
