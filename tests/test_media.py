"""Tests of vidlatent.media: reading, selecting, resizing, loading images and writing videos."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from vidlatent.errors import MediaError, OutputError, UsageError
from vidlatent.media import (
    parse_dimensions,
    MAX_VIDEO_SIDE,
    FrameSelection,
    VideoInfo,
    VideoWriter,
    check_video_size,
    fit_size,
    iter_frames,
    load_image,
    output_kind,
    probe,
    resize_frame,
    resize_image,
    selected_fps,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MP4 = DATA / "test_video1.mp4"
GIF = DATA / "bear.gif"
IMAGE = DATA / "test_image.png"

needs_data = pytest.mark.skipif(not (MP4.is_file() and GIF.is_file() and IMAGE.is_file()), reason=f"no test data in {DATA}")


def ramp_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth (H, W, 3) uint8 frame that survives lossy codecs recognisably."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, seed * 10 % 256)], axis=-1)
    return frame.astype(np.uint8)


def make_folder(folder: Path, names: list[str], size: tuple[int, int] = (32, 16)) -> Path:
    """Write one flat gray PNG per name; the gray value is the name's position in `names` times 10."""
    folder.mkdir()
    for position, name in enumerate(names):
        Image.new("RGB", size, (position * 10,) * 3).save(folder / name)
    return folder


def values(frames: list[np.ndarray]) -> list[int]:
    """The flat gray level of each frame, divided by 10: the frame's index in make_folder."""
    return [int(frame[0, 0, 0]) // 10 for frame in frames]


def ffmpeg_stream_line(path: Path) -> str:
    """The 'Video:' line ffmpeg -i prints about the first video stream of `path`."""
    result = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return next(line for line in result.stderr.splitlines() if "Video:" in line)


# --- probe and selections on the real clips ---------------------------------------------------


@needs_data
@pytest.mark.parametrize("path", [MP4, GIF], ids=["mp4", "gif"])
def test_probe_real_clips(path: Path) -> None:
    assert probe(path) == VideoInfo(width=576, height=576, fps=10.0, frame_count=21)


@needs_data
@pytest.mark.parametrize("path", [MP4, GIF], ids=["mp4", "gif"])
@pytest.mark.parametrize(
    ("selection", "count"),
    [
        (FrameSelection(), 21),
        (FrameSelection(start=5), 16),
        (FrameSelection(frames=4), 4),
        (FrameSelection(stride=2), 11),  # 0, 2, ..., 20
        (FrameSelection(start=1, stride=3), 7),  # 1, 4, ..., 19
        (FrameSelection(start=10, frames=3, stride=4), 3),  # 10, 14, 18
        (FrameSelection(start=20), 1),
        (FrameSelection(fps=5.0), 11),  # 10 fps halved: every other frame
        (FrameSelection(fps=7.0), 15),  # 2.1 s at 7 fps
        (FrameSelection(fps=20.0, frames=6), 6),
    ],
)
def test_iter_frames_selection_counts(path: Path, selection: FrameSelection, count: int) -> None:
    frames = list(iter_frames(path, selection))
    assert len(frames) == count
    assert all(frame.shape == (576, 576, 3) and frame.dtype == np.uint8 for frame in frames)


@needs_data
def test_fps_halving_picks_the_same_frames_as_stride_two() -> None:
    by_fps = list(iter_frames(MP4, FrameSelection(start=3, fps=5.0)))
    by_stride = list(iter_frames(MP4, FrameSelection(start=3, stride=2)))
    assert len(by_fps) == len(by_stride) == 9
    for a, b in zip(by_fps, by_stride):
        np.testing.assert_array_equal(a, b)


@needs_data
def test_frames_are_writable_rgb() -> None:
    frame = next(iter_frames(MP4))
    assert frame.flags.writeable and frame.flags.c_contiguous
    frame[0, 0] = 0  # a caller may edit frames in place


@needs_data
@pytest.mark.parametrize("stop_by", ["selection", "consumer"])
def test_early_stop_closes_the_reader(monkeypatch: pytest.MonkeyPatch, stop_by: str) -> None:
    state = {"pulled": 0, "closed": False}
    real = imageio_ffmpeg.read_frames

    def counting(*args, **kwargs):
        reader = real(*args, **kwargs)
        try:
            for item in reader:
                state["pulled"] += 1
                yield item
        finally:
            state["closed"] = True
            reader.close()

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", counting)
    if stop_by == "selection":
        frames = list(iter_frames(MP4, FrameSelection(frames=2)))
        assert len(frames) == 2
    else:
        stream = iter_frames(MP4)
        next(stream)
        next(stream)
        stream.close()
    assert state["closed"]
    assert state["pulled"] == 3  # the metadata and two frames, not the other 19


@needs_data
def test_iter_frames_resizes() -> None:
    frames = list(iter_frames(GIF, FrameSelection(frames=3), size=(256, 128)))
    assert [frame.shape for frame in frames] == [(128, 256, 3)] * 3


def test_selected_fps() -> None:
    info = VideoInfo(576, 576, 10.0, 21)
    assert selected_fps(info, FrameSelection()) == 10.0
    assert selected_fps(info, FrameSelection(stride=2)) == 5.0
    assert selected_fps(info, FrameSelection(fps=7.0)) == 7.0


# --- folders of images -----------------------------------------------------------------------


def test_folder_natural_order_and_probe(tmp_path: Path) -> None:
    names = ["frame1.png", "frame2.jpg", "frame10.png", "Frame11.PNG"]
    folder = make_folder(tmp_path / "frames", names)
    (folder / "notes.txt").write_text("not a frame")
    Image.new("RGB", (32, 16), (250, 250, 250)).save(folder / ".hidden0.png")
    assert values(list(iter_frames(folder))) == [0, 1, 2, 3]
    assert probe(folder) == VideoInfo(width=32, height=16, fps=7.0, frame_count=4)
    assert probe(folder, folder_fps=12.0).fps == 12.0


def test_folder_selection_and_resize(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "frames", [f"f{i}.png" for i in range(10)])
    assert values(list(iter_frames(folder, FrameSelection(start=2, stride=3)))) == [2, 5, 8]
    assert values(list(iter_frames(folder, FrameSelection(frames=2)))) == [0, 1]
    assert next(iter_frames(folder, size=(64, 64))).shape == (64, 64, 3)


def test_fps_resampling_picks_nearest_frames(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "frames", [f"f{i}.png" for i in range(10)])
    # 10 fps -> 4 fps: output times 0, 0.25, 0.5, 0.75 s are source frames 0, 2.5 (rounds up), 5, 7.5.
    assert values(list(iter_frames(folder, FrameSelection(fps=4.0), folder_fps=10.0))) == [0, 3, 5, 8]
    # 10 fps -> 20 fps repeats frames; frames after the source's end do not exist.
    assert values(list(iter_frames(folder, FrameSelection(fps=20.0), folder_fps=10.0))) == [0] + [i for i in range(1, 10) for _ in (0, 1)]
    assert values(list(iter_frames(folder, FrameSelection(start=4, fps=5.0), folder_fps=10.0))) == [4, 6, 8]


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match="no images"):
        list(iter_frames(empty))
    mixed = make_folder(tmp_path / "mixed", ["a1.png"])
    Image.new("RGB", (20, 20)).save(mixed / "a2.png")
    with pytest.raises(MediaError, match="20x20 differs"):
        list(iter_frames(mixed))
    assert len(list(iter_frames(mixed, size=(64, 64)))) == 2  # a common size makes them usable


# --- errors ----------------------------------------------------------------------------------


def test_missing_video(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(MediaError, match="no such file"):
        list(iter_frames(missing))
    with pytest.raises(MediaError, match="no such file"):
        probe(missing)


def test_text_renamed_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match=r"fake\.mp4: not a readable video \(Invalid data"):
        list(iter_frames(fake))
    with pytest.raises(MediaError, match="not a readable video"):
        probe(fake)


def test_audio_only_file(tmp_path: Path) -> None:
    audio = tmp_path / "sound.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac", str(audio)]
    subprocess.run(command, check=True)
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_frames(audio))


def test_unsupported_suffix(tmp_path: Path) -> None:
    other = tmp_path / "clip.xyz"
    other.write_bytes(b"\0" * 10)
    with pytest.raises(MediaError, match=r"use one of \.mp4"):
        list(iter_frames(other))


@needs_data
@pytest.mark.parametrize("path", [MP4, GIF], ids=["mp4", "gif"])
def test_zero_frame_selection(path: Path) -> None:
    with pytest.raises(MediaError, match="has 21 frame"):
        list(iter_frames(path, FrameSelection(start=21)))


@pytest.mark.parametrize(
    "selection",
    [
        FrameSelection(start=-1),
        FrameSelection(frames=0),
        FrameSelection(stride=0),
        FrameSelection(fps=0.0),
        FrameSelection(fps=-5.0),
        FrameSelection(fps=5.0, stride=2),
    ],
)
def test_bad_selections(selection: FrameSelection, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        selection.validate()
    with pytest.raises(UsageError):
        next(iter_frames(tmp_path / "unused.mp4", selection))  # checked before the file is touched


# --- images ----------------------------------------------------------------------------------


def saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_load_real_image() -> None:
    if not IMAGE.is_file():
        pytest.skip(f"no test data in {DATA}")
    image = load_image(IMAGE)
    assert (image.mode, image.size) == ("RGB", (1024, 576))
    assert load_image(IMAGE.read_bytes()).size == (1024, 576)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGB", (8, 4), (10, 20, 30)), (10, 20, 30)),
        (Image.new("L", (8, 4), 77), (77, 77, 77)),
        (Image.new("1", (8, 4), 1), (255, 255, 255)),
        (Image.new("RGBA", (8, 4), (10, 20, 30, 0)), (255, 255, 255)),  # fully transparent -> white
        (Image.new("RGBA", (8, 4), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("LA", (8, 4), (0, 0)), (255, 255, 255)),
        (Image.new("LA", (8, 4), (0, 255)), (0, 0, 0)),
        (Image.new("RGB", (8, 4), (200, 0, 0)).convert("P", palette=Image.Palette.ADAPTIVE), (200, 0, 0)),
        (Image.new("CMYK", (8, 4), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("CMYK", (8, 4), (0, 255, 255, 0)), (255, 0, 0)),
    ],
    ids=["rgb", "l", "1bit", "rgba-clear", "rgba-opaque", "la-clear", "la-opaque", "p", "cmyk-white", "cmyk-red"],
)
def test_load_image_modes(tmp_path: Path, image: Image.Image, expected: tuple[int, int, int]) -> None:
    suffix = ".tif" if image.mode == "CMYK" else ".png"
    loaded = load_image(saved(image, tmp_path / f"image{suffix}"))
    assert loaded.mode == "RGB" and loaded.size == (8, 4)
    assert loaded.getpixel((3, 2)) == expected


def test_palette_transparency_becomes_white(tmp_path: Path) -> None:
    image = Image.new("P", (8, 4), 1)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)
    path = saved(image, tmp_path / "p.png", transparency=1)  # palette entry 1 (blue) is clear
    loaded = load_image(path)
    assert loaded.getpixel((0, 0)) == (0, 0, 0)
    assert loaded.getpixel((5, 2)) == (255, 255, 255)
    gif = load_image(saved(image, tmp_path / "p.gif", transparency=1))
    assert gif.getpixel((5, 2)) == (255, 255, 255)


def test_16bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.array([[0, 257 * 10, 32896, 65535]], dtype=np.uint16)  # (1, 4)
    image = Image.fromarray(levels)
    assert image.mode == "I;16"
    loaded = load_image(saved(image, tmp_path / "gray16.png"))
    assert np.asarray(loaded)[0, :, 0].tolist() == [0, 10, 128, 255]
    # Mode "I" (32-bit) holding 16-bit values is scaled too; holding 8-bit values it is kept.
    assert np.asarray(load_image(saved(Image.fromarray(levels.astype(np.int32)), tmp_path / "i.tif")))[0, :, 0].tolist() == [0, 10, 128, 255]
    small = np.array([[0, 10, 200]], dtype=np.int32)
    assert np.asarray(load_image(saved(Image.fromarray(small), tmp_path / "i8.tif")))[0, :, 0].tolist() == [0, 10, 200]


def test_16bit_rgb_png(tmp_path: Path) -> None:
    path = tmp_path / "rgb48.png"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=0x204080:s=8x6"]
    subprocess.run([*command, "-frames:v", "1", "-pix_fmt", "rgb48be", str(path)], check=True)
    loaded = load_image(path)
    assert (loaded.mode, loaded.size) == ("RGB", (8, 6))
    assert np.allclose(loaded.getpixel((4, 3)), (0x20, 0x40, 0x80), atol=4)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path: Path, suffix: str) -> None:
    # Stored 40x20 with a red left half; orientation 6 means "rotate 90 degrees clockwise to view".
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(saved(stored, tmp_path / f"rotated{suffix}", exif=exif))
    assert loaded.size == (20, 40)
    assert np.allclose(loaded.getpixel((10, 5)), (255, 0, 0), atol=40)  # red is now on top
    assert np.allclose(loaded.getpixel((10, 35)), (0, 0, 255), atol=40)


def test_load_image_from_bytes(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (5, 3), (1, 2, 3, 255)).save(buffer, format="WEBP", lossless=True)
    loaded = load_image(buffer.getvalue())
    assert (loaded.mode, loaded.size, loaded.getpixel((0, 0))) == ("RGB", (5, 3), (1, 2, 3))


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "missing.png")
    text = tmp_path / "text.png"
    text.write_text("hello")
    with pytest.raises(MediaError, match=r"text\.png: not a readable image \(unknown format\)"):
        load_image(text)
    with pytest.raises(MediaError, match="the image data: not a readable image"):
        load_image(b"")
    png = io.BytesIO()
    Image.fromarray(ramp_frame(64, 64)).save(png, format="PNG")
    with pytest.raises(MediaError):
        load_image(png.getvalue()[: len(png.getvalue()) // 2])  # truncated
    with pytest.raises(MediaError, match="not a file"):
        load_image(tmp_path)


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt", "iTXt"])
def test_photo_with_a_large_metadata_chunk_loads(tmp_path: Path, chunk: str) -> None:
    # A 1024x768 photo carrying 6 MB of camera metadata, as real ones do: every viewer opens it.
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    text = "<x:xmpmeta>" + "0123456789abcdef" * (6 * 2**20 // 16) + "</x:xmpmeta>"
    if chunk == "iTXt":
        info.add_itxt("XML:com.adobe.xmp", text, zip=True)
    else:
        info.add_text("Comment", text, zip=chunk == "zTXt")
    path = tmp_path / "photo.png"
    Image.fromarray(ramp_frame(1024, 768)).save(path, pnginfo=info)
    assert load_image(path).size == (1024, 768)
    assert (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY) == (2**20, 64 * 2**20)  # Pillow's own, restored


# --- sizes -----------------------------------------------------------------------------------


def test_video_size_limits_are_the_bundled_encoders(tmp_path: Path) -> None:
    """MAX_VIDEO_SIDE is what the bundled ffmpeg really accepts: one frame at the limit encodes,
    one a step beyond is refused, by ffmpeg and by check_video_size alike."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    encoders = {".mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p"], ".gif": [], ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p"]}
    for suffix, codec in encoders.items():
        limit = MAX_VIDEO_SIDE[suffix]
        for width, accepted in ((limit, True), (limit + 2, False)):
            target = tmp_path / f"w{width}{suffix}"
            command = [ffmpeg, "-v", "quiet", "-f", "lavfi", "-i", f"color=s={width}x16:d=0.1", "-frames:v", "1", *codec, str(target)]
            assert (subprocess.run(command).returncode == 0) == accepted, (suffix, width)
            if accepted:
                check_video_size(target, width, 16)
            else:
                with pytest.raises(UsageError, match=f"at most {limit} px a side"):
                    check_video_size(target, width, 16)
    check_video_size(tmp_path / "o.mp4", 16383, 16)  # padded to 16384: fine
    check_video_size(tmp_path / "frames", 100_000, 16)  # PNG frames: no limit
    with pytest.raises(UsageError, match="24256x64 px is more than ffmpeg's libx264"):
        VideoWriter(tmp_path / "wide.mp4", fps=7).write(np.zeros((64, 24256, 3), np.uint8))
    assert list(tmp_path.glob(".wide.mp4*")) == []


def test_video_cannot_go_to_stdout() -> None:
    with pytest.raises(UsageError, match="cannot go to standard output"):
        output_kind("-")




@pytest.mark.parametrize(("text", "size"), [("1024x576", (1024, 576)), ("64X64", (64, 64)), (" 512 x 768 ", (512, 768)),
                                           ("1000x576", (1000, 576))])
def test_parse_dimensions_good(text: str, size: tuple[int, int]) -> None:
    assert parse_dimensions(text) == size  # which sizes a model takes is knobs.check_size's


@pytest.mark.parametrize("text", ["1024x0", "0x0", "1024", "1024x576x3", "-64x64", "axb", "", "1024.0x576"])
def test_parse_dimensions_bad(text: str) -> None:
    with pytest.raises(UsageError, match="--size"):
        parse_dimensions(text)


def test_parse_dimensions_message_names_value_and_form() -> None:
    with pytest.raises(UsageError) as caught:
        parse_dimensions("big")
    assert str(caught.value) == "--size big: expected WIDTHxHEIGHT, e.g. 1024x576"


@pytest.mark.parametrize(
    ("width", "height", "area", "expected"),
    [
        (1024, 576, 1024 * 576, (1024, 576)),
        (576, 576, 1024 * 576, (768, 768)),
        (1024, 576, 64 * 64, (64, 64)),
        (1920, 1080, 1024 * 576, (1024, 576)),
        (576, 1024, 1024 * 576, (576, 1024)),
        (4000, 100, 1024 * 576, (4864, 128)),
    ],
)
def test_fit_size(width: int, height: int, area: int, expected: tuple[int, int]) -> None:
    assert fit_size(width, height, area) == expected


def test_fit_size_multiple_and_bad_values() -> None:
    assert fit_size(100, 100, 100 * 100, multiple=16) == (96, 96)
    assert fit_size(100, 100, 100 * 100, multiple=8) == (104, 104)  # 12.5 multiples: halves round up
    with pytest.raises(ValueError):
        fit_size(0, 10, 100)


def test_resize_frame_covers_and_center_crops() -> None:
    frame = np.zeros((100, 300, 3), dtype=np.uint8)  # thirds: red, green, blue
    frame[:, :100, 0] = frame[:, 100:200, 1] = frame[:, 200:, 2] = 255
    square = resize_frame(frame, (64, 64))
    assert square.shape == (64, 64, 3) and square.dtype == np.uint8
    assert square[:, 4:-4].mean(axis=(0, 1)).round().tolist() == [0, 255, 0]  # only the middle third is left
    wide = resize_frame(ramp_frame(64, 64), (128, 32))
    assert wide.shape == (32, 128, 3)


def test_resize_frame_same_size_is_the_same_array() -> None:
    frame = ramp_frame(64, 32)
    assert resize_frame(frame, (64, 32)) is frame
    with pytest.raises(ValueError):
        resize_frame(frame[..., 0], (32, 32))
    with pytest.raises(ValueError):
        resize_frame(frame.astype(np.float32), (32, 32))


def test_resize_image() -> None:
    image = Image.new("RGB", (300, 100), (9, 9, 9))
    assert resize_image(image, (64, 64)).size == (64, 64)
    assert resize_image(image, (300, 100)) is image
    if IMAGE.is_file():
        photo = load_image(IMAGE)
        np.testing.assert_array_equal(np.asarray(resize_image(photo, (512, 256))), resize_frame(np.asarray(photo), (512, 256)))


# --- writing ---------------------------------------------------------------------------------


def test_output_kind(tmp_path: Path) -> None:
    assert output_kind("out.mp4") == output_kind("out.WEBM") == output_kind("a/b.gif") == "video"
    assert output_kind(tmp_path / "frames") == "folder"
    existing = tmp_path / "frames.v2"
    existing.mkdir()
    assert output_kind(existing) == "folder"
    with pytest.raises(UsageError, match=r"\.avi.*use \.mp4, \.webm, \.gif"):
        output_kind("out.avi")


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "clip.gif", "frames"])
def test_writer_round_trip(tmp_path: Path, name: str, capfd: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / name
    written = [ramp_frame(128, 64, seed) for seed in range(6)]
    with VideoWriter(target, fps=8.0) as writer:
        for frame in written:
            writer.write(frame)
    assert writer.frames_written == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left over
    frames = list(iter_frames(target))
    assert len(frames) == 6
    assert all(frame.shape == (64, 128, 3) for frame in frames)
    assert np.abs(frames[3].astype(int) - written[3]).mean() < 8  # lossy, but the same picture
    info = probe(target, folder_fps=8.0)
    assert (info.width, info.height, info.frame_count) == (128, 64, 6)
    assert info.fps == pytest.approx(8.0, rel=0.05)  # GIF delays are whole centiseconds
    assert capfd.readouterr().out == ""  # nothing on stdout, ffmpeg included
    if name == "frames":
        assert sorted(p.name for p in target.iterdir()) == [f"frame_{i:05d}.png" for i in range(6)]
        np.testing.assert_array_equal(frames[2], written[2])  # PNGs are lossless


@needs_data
def test_mp4_is_h264_yuv420p(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with VideoWriter(target, fps=7.0) as writer:
        for frame in iter_frames(MP4, FrameSelection(frames=5), size=(256, 128)):
            writer.write(frame)
    line = ffmpeg_stream_line(target)
    assert "h264" in line and "yuv420p" in line and "256x128" in line


def test_mp4_odd_size_is_padded(tmp_path: Path) -> None:
    target = tmp_path / "odd.mp4"
    with VideoWriter(target, fps=5.0) as writer:
        writer.write(ramp_frame(65, 33))
    assert probe(target).width == 66 and probe(target).height == 34


def test_writer_rejects_bad_frames_and_options(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "a.mp4", fps=5.0) as writer:
        writer.write(ramp_frame(64, 64))
        with pytest.raises(ValueError, match="64x32"):
            writer.write(ramp_frame(64, 32))
        with pytest.raises(ValueError):
            writer.write(ramp_frame(64, 64).astype(np.float32))
    assert probe(tmp_path / "a.mp4").frame_count == 1
    with pytest.raises(ValueError, match="closed"):
        writer.write(ramp_frame(64, 64))
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "b.mp4", fps=0)
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "b.mp4", fps=5, quality=11)
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "b.avi", fps=5)
    with pytest.raises(OutputError, match="its folder cannot be made"):
        VideoWriter(tmp_path / "a.mp4" / "b.mp4", fps=5)  # a file where its folder would go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif", "frames"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_writer_is_atomic(tmp_path: Path, name: str, error: type[BaseException]) -> None:
    target = tmp_path / name
    with pytest.raises(error):
        with VideoWriter(target, fps=5.0) as writer:
            writer.write(ramp_frame(64, 64))
            writer.write(ramp_frame(64, 64, 1))
            raise error("stop")
    assert list(tmp_path.iterdir()) == []


def test_writer_without_frames_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", fps=5.0):
            pass
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_existing_outputs(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_text("old")
    folder = make_folder(tmp_path / "frames", ["frame_00000.png", "frame_00001.png", "frame_00002.png"])
    for target in (video, folder):
        with VideoWriter(target, fps=5.0) as writer:
            writer.write(ramp_frame(64, 64))
        assert probe(target, folder_fps=5.0).frame_count == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "frames"]


def test_writer_never_replaces_a_folder_of_other_files(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "photos", ["holiday.png", "frame_00000.png"])
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="holds other files"):
        VideoWriter(folder, fps=5.0)
    assert sorted(p.name for p in folder.iterdir()) == ["frame_00000.png", "holiday.png", "notes.txt"]


def test_module_does_not_import_torch() -> None:
    code = "import sys, vidlatent.media; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
