"""Video and image IO: read frames, load images, resize, write videos.

Frames are numpy arrays of shape (H, W, 3), dtype uint8, RGB. Videos are decoded and encoded
by the ffmpeg that ships with imageio-ffmpeg (never a system ffmpeg), images by Pillow. This
module does not import torch.

Size policy. A model takes sides that are multiples of its size multiple (SVD 64, Wan 16,
LTX 32): an explicit ``--size`` (``parse_dimensions``) is checked against it by
``vidlatent.knobs.check_size``. Without one, ``fit_size`` keeps the input's aspect ratio,
scales it to about the model's native pixel area (1024x576 for SVD) and rounds each side to
the nearest multiple. Frames are brought to a size by scaling them until
they *cover* it and center-cropping the excess (``resize_frame``, ``resize_image``): the
picture is never stretched, and Pillow's LANCZOS filter antialiases when shrinking.

Timing. A video is read at one constant rate that agrees with its timestamps: a constant-rate
video frame by frame, a variable-rate one (phones, screen recordings) through ffmpeg's fps
filter at its average rate, frames / duration. A video that ends before the length its
header declares (a truncated download) is read as far as it goes, with a note saying so.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidlatent.atomic import atomic_output
from vidlatent.errors import MediaError, Note, OutputError, UsageError

SUPPORTED_VIDEO_READ = (".mp4", ".webm", ".mov", ".avi", ".gif", ".mkv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_WRITE_SUFFIXES = (".mp4", ".webm", ".gif")
SOUND_SUFFIX = ".wav"  # the sound alone (decode -o x.wav)
# Per video suffix, the sound's encoder (the bundled ffmpeg's): .gif and PNG frames hold no sound.
_SOUND_ENCODERS = {".mp4": "aac", ".webm": "libopus"}

DEFAULT_FOLDER_FPS = 7.0  # SVD's training frame rate; a folder of images has no rate of its own
SIZE_MULTIPLE = 64
FRAME_NAME = re.compile(r"frame_\d{5,}\.png")  # the files of a PNG-frames output

# Per output suffix: encoder, ffmpeg muxer and pixel format passed to imageio_ffmpeg.write_frames.
_ENCODERS = {
    ".mp4": ("libx264", "mp4", "yuv420p"),
    ".webm": ("libvpx-vp9", "webm", "yuv420p"),
    ".gif": ("gif", "gif", "pal8"),
}
# The longest side each encoder takes, found by trying the bundled ffmpeg (n9.0): libx264 says
# "invalid width x height" above 16384, libvpx-vp9 "g_w out of range [1..65536]", and the gif
# encoder "does not support resolutions above 65535x65535".
MAX_VIDEO_SIDE = {".mp4": 16384, ".webm": 65536, ".gif": 65535}
# ffmpeg also refuses any picture with (width + 128) x (height + 128) >= INT_MAX / 8 pixels
# (libavutil's av_image_check_size).
_MAX_PICTURE = (2**31 - 1) // 8
# A comment tag goes to ffmpeg as one command-line argument, which Linux caps at 128 KiB
# (MAX_ARG_STRLEN); a longer one is left out of the video, with a note.
MAX_COMMENT_BYTES = 100_000
COMMENT_SUFFIXES = (".mp4", ".webm")  # ffmpeg's gif muxer keeps no tags
PNG_COMMENT_KEY = "Comment"  # PNG's registered text keyword for a comment
# Pillow refuses PNG text chunks that expand beyond 1 MiB (64 MiB in all) as decompression
# bombs, but a camera's metadata chunk can be several MB. These limits apply while vidlatent
# opens an image: a text chunk still cannot expand without bound.
PNG_TEXT_CHUNK_LIMIT = 64 * 2**20
PNG_TEXT_MEMORY_LIMIT = 256 * 2**20


@dataclass(frozen=True)
class FrameSelection:
    """Which source frames to keep: ``start``, then every ``stride``-th (or resampled to ``fps``), at most ``frames``."""

    start: int = 0
    frames: int | None = None
    stride: int = 1
    fps: float | None = None

    def validate(self) -> None:
        """Raise UsageError when a value cannot be used."""
        if self.start < 0:
            raise UsageError(f"--start {self.start}: must be 0 or more (a source frame index)")
        if self.frames is not None and self.frames < 1:
            raise UsageError(f"--frames {self.frames}: must be 1 or more")
        if self.stride < 1:
            raise UsageError(f"--stride {self.stride}: must be 1 or more")
        if self.fps is not None and not self.fps > 0:
            raise UsageError(f"--fps {self.fps}: must be more than 0")
        if self.fps is not None and self.stride != 1:
            raise UsageError(f"--fps {self.fps} and --stride {self.stride}: give one or the other, not both")


@dataclass(frozen=True)
class VideoInfo:
    """A source's frame size, rate and length, before any selection (fps 0.0: unknown).

    ``fps`` is the rate the frames are read at: for a variable-rate video (``variable_rate``)
    its average, frames / duration, at which iter_frames resamples it by the timestamps.
    """

    width: int
    height: int
    fps: float
    frame_count: int | None
    variable_rate: bool = False
    sound: str | None = None  # the codec of its sound track, where it has one (ffmpeg's name: aac, opus, ...)


def probe(path: str | os.PathLike[str], *, folder_fps: float = DEFAULT_FOLDER_FPS) -> VideoInfo:
    """Describe a video file or a folder of images.

    Args:
        path: a video file (see SUPPORTED_VIDEO_READ) or a folder of images.
        folder_fps: the frame rate to report for a folder of images.

    The frame count of a video is exact: ffmpeg decodes the whole file once to count it.
    """
    path = Path(path)
    if path.is_dir():
        files = folder_images(path)
        width, height = load_image(files[0]).size
        return VideoInfo(width, height, float(folder_fps), len(files))
    _check_video_file(path)
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = _next_or_media_error(reader, path)
    finally:
        reader.close()
    timing = _timing(path, float(meta["fps"]))
    width, height = meta["size"]
    return VideoInfo(int(width), int(height), timing.fps, timing.frames, timing.variable, sound=meta.get("audio_codec"))


@dataclass(frozen=True)
class _Timing:
    fps: float  # the rate to read at
    frames: int | None  # frames in the file (None: not countable)
    variable: bool  # resample by timestamps: the header's rate disagrees with frames / duration


def _timing(path: Path, header_fps: float) -> _Timing:
    """How to read ``path`` so that its frames and their rate agree with its timestamps.

    ffmpeg's header rate is the stream's average as the container states it, and ffmpeg reads
    a video by repeating frames up to a rate of its own guess (a 3.8 s variable-rate clip of
    38 frames may read as 75 frames said to be 11 fps). So the frames' presentation times are
    listed from the packets: evenly spaced, the video is read frame by frame at the header's
    rate; otherwise at its average, frames / duration, resampled by the timestamps.
    """
    status = path.stat()
    times, last = _frame_times(str(path), status.st_mtime_ns, status.st_size)
    if len(times) < 2:
        return _Timing(header_fps, len(times) or None, False)
    intervals = [later - earlier for earlier, later in zip(times, times[1:])]
    typical = sorted(intervals)[len(intervals) // 2]
    if not typical > 0 or all(abs(interval - typical) <= 0.25 * typical for interval in intervals):
        return _Timing(header_fps, len(times), False)
    duration = times[-1] - times[0] + (last or typical)
    return _Timing(len(times) / duration, len(times), True)


@functools.lru_cache(maxsize=64)
def _frame_times(path: str, mtime_ns: int, size: int) -> tuple[tuple[float, ...], float]:
    """The sorted presentation times (s) of a video file's frames and the last one's duration.

    From its packets, without decoding (ffmpeg's framecrc muxer, one fast pass); cached per
    version of the file. No times when ffmpeg lists no packets.
    """
    import subprocess

    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "quiet", "-nostdin", "-i", path, "-map", "0:v:0", "-c", "copy",
               "-f", "framecrc", "-"]
    listing = subprocess.run(command, capture_output=True, text=True, errors="replace").stdout
    base = re.search(r"^#tb 0: (\d+)/(\d+)", listing, re.MULTILINE)
    if base is None:
        return (), 0.0
    tick = int(base[1]) / int(base[2])
    packets = [line.split(",") for line in listing.splitlines() if line.startswith("0,")]  # stream, dts, pts, duration, …
    times = sorted(int(fields[2]) * tick for fields in packets)
    return tuple(times), (int(packets[-1][3]) * tick if packets else 0.0)


def selected_fps(info: VideoInfo, selection: FrameSelection) -> float:
    """The frame rate of the selected frames: ``selection.fps``, else the source rate over the stride.

    Args:
        info: the source, from probe().
        selection: the frames kept.
    """
    if selection.fps is not None:
        return float(selection.fps)
    return info.fps / selection.stride


def iter_frames(
    path: str | os.PathLike[str],
    selection: FrameSelection = FrameSelection(),
    size: tuple[int, int] | None = None,
    *,
    folder_fps: float = DEFAULT_FOLDER_FPS,
) -> Iterator[np.ndarray]:
    """Stream the selected frames of a video or folder of images, one (H, W, 3) uint8 RGB array at a time.

    Args:
        path: a video file (see SUPPORTED_VIDEO_READ) or a folder of images, read in natural
            order (frame2 before frame10).
        selection: which frames to keep; validated first.
        size: (width, height) to bring every frame to with resize_frame; None keeps the source size.
        folder_fps: the source frame rate of a folder, used when ``selection.fps`` resamples it.

    The source is decoded lazily and reading stops once ``selection.frames`` frames were
    yielded, or when the consumer closes the generator. With ``selection.fps`` each output
    time takes the nearest source frame, so a rate above the source's repeats frames.
    Raises MediaError when the source is missing, unreadable or has no frame in the selection.
    """
    selection.validate()
    path = Path(path)
    declared = 0
    if path.is_dir():
        source: Generator[np.ndarray, None, None] = _folder_frames(path, same_size=size is None)
        source_fps = float(folder_fps)
    else:
        _check_video_file(path)
        import imageio_ffmpeg

        # Never let ffmpeg repeat frames to a rate of its own choosing: every frame once, or a
        # variable-rate video resampled to its average rate (by a second reader).
        reader = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
        meta = _next_or_media_error(reader, path)
        timing = _timing(path, float(meta["fps"]))
        if timing.variable:
            reader.close()
            reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", f"fps={timing.fps:.6f}", "-fps_mode", "passthrough"])
            meta = _next_or_media_error(reader, path)
        source = _video_frames(reader, path, meta["size"])
        source_fps = timing.fps
        declared = round(float(meta.get("duration") or 0) * source_fps)  # what the header promises
    if selection.fps is not None and source_fps <= 0:
        source.close()
        raise MediaError(f"{path}: the video's frame rate is unknown, so --fps cannot resample it; use --stride")

    yielded = 0
    seen = 0
    try:
        for index, frame in enumerate(source):
            seen = index + 1
            for _ in range(_copies(index, selection, source_fps)):
                yield frame if size is None else resize_frame(frame, size)
                yielded += 1
                if selection.frames is not None and yielded >= selection.frames:
                    return  # closing `source` in finally stops ffmpeg before the end of the file
    finally:
        source.close()
    if declared and seen < declared - max(2, 0.05 * declared):
        warnings.warn(
            f"{path}: the video ended early: {seen} frames read, its header declares {declared} "
            f"({declared / source_fps:.2f} s at {source_fps:g} fps); the file may be truncated",
            Note,
            stacklevel=2,
        )
    if yielded == 0 and seen == 0:
        raise MediaError(f"{path}: the source has no frames; check the file is a complete video")
    if yielded == 0:
        raise MediaError(
            f"{path}: no frames selected: the source has {seen} frame(s) and the selection starts at "
            f"frame {selection.start}; choose a smaller --start"
        )


def _copies(index: int, selection: FrameSelection, source_fps: float) -> int:
    """How many times source frame ``index`` appears in the selection (0 = skipped)."""
    offset = index - selection.start
    if offset < 0:
        return 0
    if selection.fps is None:
        return 1 if offset % selection.stride == 0 else 0
    # Output frame k shows time k / fps after the start; it takes the source frame nearest to
    # that time, i.e. offset round(k * ratio). Count the k whose rounding lands on this offset.
    ratio = source_fps / selection.fps
    first = math.ceil((offset - 0.5) / ratio - 1e-9)  # smallest k with k * ratio + 0.5 >= offset
    end = math.ceil((offset + 0.5) / ratio - 1e-9)  # smallest k with k * ratio + 0.5 >= offset + 1
    return max(0, end - max(first, 0))


def _video_frames(reader: Any, path: Path, size: tuple[int, int]) -> Generator[np.ndarray, None, None]:
    width, height = size
    try:
        for data in reader:
            # Copy out of the read-only bytes so callers get ordinary writable arrays.
            yield np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()  # (H, W, 3) uint8
    except (OSError, RuntimeError) as error:
        raise MediaError(f"{path}: decoding failed ({_ffmpeg_reason(error)}); check the file is complete") from error
    finally:
        reader.close()


def _folder_frames(folder: Path, same_size: bool) -> Generator[np.ndarray, None, None]:
    """Decode the folder's images in order; with ``same_size``, all must match the first one."""
    first_size = None
    for file in folder_images(folder):
        image = load_image(file)
        if first_size is None:
            first_size = image.size
        elif same_size and image.size != first_size:
            raise MediaError(_size_differs(file, image.size, first_size))
        yield np.asarray(image)  # (H, W, 3) uint8


def check_frames_folder(path: str | os.PathLike[str], *, same_size: bool) -> None:
    """For a folder of frames: raise MediaError now, before any model loads, for an image that
    Pillow cannot identify or (with ``same_size``) one whose size differs from the first's.

    Only the images' headers are read; a file is not a folder: nothing to check.
    """
    folder = Path(path)
    if not folder.is_dir():
        return
    first_size = None
    for file in folder_images(folder):
        try:
            with _png_text_limits(), Image.open(file) as image:
                size = image.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise _unreadable_image(file, error) from error
        first_size = first_size or size
        if same_size and size != first_size:
            raise MediaError(_size_differs(file, size, first_size))


def _size_differs(file: Path, size: tuple[int, int], first_size: tuple[int, int]) -> str:
    return (
        f"{file}: {size[0]}x{size[1]} differs from the folder's first image "
        f"({first_size[0]}x{first_size[1]}); give --size to resize all frames to one size"
    )


def folder_images(folder: Path) -> list[Path]:
    """The images in ``folder`` (no hidden files), in natural order: frame2 before frame10."""
    files = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    ]
    if not files:
        raise MediaError(f"{folder}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)}); put frames in it")
    return sorted(files, key=natural_key)


def natural_key(path: Path) -> tuple[list[str | int], str]:
    # re.split with a group alternates text and digits, so same-position parts compare alike.
    parts = re.split(r"(\d+)", path.name.casefold())
    return [int(part) if i % 2 else part for i, part in enumerate(parts)], path.name


def _check_video_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file; give a video file or a folder of images")
    if path.suffix.lower() not in SUPPORTED_VIDEO_READ:
        raise MediaError(
            f"{path}: '{path.suffix}' is not a video type this tool reads; "
            f"use one of {', '.join(SUPPORTED_VIDEO_READ)} or a folder of images"
        )


def _next_or_media_error(reader: Any, path: Path) -> dict[str, Any]:
    """The metadata read_frames yields first, or MediaError when ffmpeg cannot open the file."""
    try:
        return next(reader)
    except (OSError, RuntimeError, ValueError, IndexError, StopIteration) as error:
        reader.close()
        raise MediaError(f"{path}: not a readable video ({_ffmpeg_reason(error)}); check the file") from error


def _ffmpeg_reason(error: BaseException) -> str:
    text = str(error)
    if "does not contain any stream" in text:
        return "no video stream"  # ffmpeg's last line would only say "Invalid argument"
    # ffmpeg's stderr ends with its conclusion, e.g. "...: Invalid data found when processing input".
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].rsplit(": ", 1)[-1] if lines else type(error).__name__


def load_image(source: str | os.PathLike[str] | bytes) -> Image.Image:
    """Load an image as an 8-bit RGB Pillow image, upright and without transparency.

    Args:
        source: a path, or the contents of an image file (e.g. read from stdin).

    EXIF orientation is applied; alpha and palette transparency are composited onto white;
    16-bit grayscale is scaled (not clipped) to 8 bits; other modes go through Pillow's convert.
    Raises MediaError for a missing file or data that is not an image.
    """
    name = "the image data" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).exists():
        raise MediaError(f"{name}: no such file; check the path")
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise MediaError(f"{name}: not a file; give an image file")
    try:
        with _png_text_limits(), Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            opened.load()  # decode now so truncated files fail here, inside the try
            image = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise _unreadable_image(name, error) from error
    return _to_rgb(image)


def _unreadable_image(name: str | os.PathLike[str], error: BaseException) -> MediaError:
    """The one error for an image Pillow cannot open or decode."""
    # Pillow's "cannot identify image file <path>" would repeat the name.
    reason = "unknown format" if isinstance(error, UnidentifiedImageError) else str(error)
    return MediaError(f"{name}: not a readable image ({reason}); give a PNG, JPEG, WebP, BMP or TIFF file")


@contextlib.contextmanager
def _png_text_limits() -> Iterator[None]:
    """Pillow's PNG text-chunk limits raised to PNG_TEXT_CHUNK_LIMIT and PNG_TEXT_MEMORY_LIMIT, within the block."""
    from PIL import PngImagePlugin

    saved = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    PngImagePlugin.MAX_TEXT_CHUNK = max(saved[0], PNG_TEXT_CHUNK_LIMIT)
    PngImagePlugin.MAX_TEXT_MEMORY = max(saved[1], PNG_TEXT_MEMORY_LIMIT)
    try:
        yield
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY = saved


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)  # (H, W)
        # Pillow's own convert clips 16-bit values at 255; scale the 16-bit range instead.
        # Mode "I" also holds 8-bit data, which is left as is.
        if image.mode != "I" or values.max() > 255:
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)  # (H, W) uint8
        return Image.fromarray(gray).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def parse_dimensions(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (e.g. "832x480") into positive (width, height); which sizes a model
    takes is its family's rule (``vidlatent.generation.check_size``)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 1024x576")
    width, height = int(match[1]), int(match[2])
    if width <= 0 or height <= 0:
        raise UsageError(f"--size {text}: width and height must be positive, e.g. 1024x576")
    return width, height


def fit_size(width: int, height: int, native_area: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """The default output size for a (width, height) input.

    Args:
        width: input width in pixels.
        height: input height in pixels.
        native_area: the model's native pixel count, e.g. 1024 * 576.
        multiple: each side is a multiple of this.

    Keeps the aspect ratio, scales to about ``native_area`` pixels and rounds each side to the
    nearest multiple (halves round up), at least one multiple. So fit_size(1024, 576, 1024*576)
    is (1024, 576), fit_size(576, 576, 1024*576) is (768, 768) and fit_size(1024, 576, 64*64)
    is (64, 64): the minimum wins over the aspect ratio.
    """
    if min(width, height, native_area, multiple) <= 0:
        raise ValueError(f"fit_size needs positive values, got {width}, {height}, {native_area}, {multiple}")
    scale = math.sqrt(native_area / (width * height))

    def side(length: int) -> int:
        return max(multiple, math.floor(length * scale / multiple + 0.5) * multiple)

    return side(width), side(height)


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bring a (H, W, 3) uint8 frame to ``size`` by cover-scaling and center-cropping (LANCZOS).

    Args:
        frame: (H, W, 3) uint8 RGB.
        size: (width, height) of the result, which is (height, width, 3) uint8.

    Returns ``frame`` itself when it already has that size.
    """
    _check_frame(frame)
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return np.array(resize_image(Image.fromarray(frame), size))  # (size[1], size[0], 3) uint8


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bring a Pillow image to ``size`` by cover-scaling and center-cropping (LANCZOS).

    Args:
        image: any Pillow image.
        size: (width, height) of the result.

    Returns ``image`` itself when it already has that size.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {width}x{height}")
    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(f"a frame must be a (H, W, 3) uint8 array, got shape {shape} of {dtype}")


def holds_sound(path: str | os.PathLike[str]) -> bool:
    """Whether a video written to ``path`` can carry a sound track (.mp4, .webm)."""
    return Path(path).suffix.lower() in _SOUND_ENCODERS


def is_sound_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a sound file (.wav) rather than a video."""
    return Path(path).suffix.lower() == SOUND_SUFFIX


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int) -> None:
    """Write (N, channels) float samples in [-1, 1] as 16-bit PCM WAV, atomically.

    Args:
        path: the .wav file.
        samples: (N, channels) float.
        rate: samples per second.
    """
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")  # (N, channels)
    try:
        with atomic_output(path) as temporary, wave.open(str(temporary), "wb") as out:
            out.setnchannels(int(pcm.shape[1]))
            out.setsampwidth(2)
            out.setframerate(int(rate))
            out.writeframes(pcm.tobytes())
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}; check the free space and permissions") from error


def output_kind(path: str | os.PathLike[str]) -> str:
    """Whether ``path`` names a video file ("video") or a folder of PNG frames ("folder").

    Args:
        path: the output path; an existing folder or a name without suffix is a folder.

    Raises UsageError for any other suffix.
    """
    if str(path) == "-":
        raise UsageError("-o -: a video cannot go to standard output; give a file (-o out.mp4) or pipe latents instead")
    path = Path(path)
    if path.suffix.lower() in VIDEO_WRITE_SUFFIXES:
        return "video"
    if path.is_dir() or not path.suffix:
        _require_frames_folder(path)
        return "folder"
    raise UsageError(
        f"{path}: cannot write '{path.suffix}' output; use {', '.join(VIDEO_WRITE_SUFFIXES)} "
        f"or a name without suffix for a folder of PNG frames"
    )


def check_video_size(path: str | os.PathLike[str], width: int, height: int) -> None:
    """Refuse a width x height that ``path``'s encoder cannot write, before any work is done.

    Args:
        path: the output; a folder of PNG frames (or latents) has no such limit.
        width, height: the frames' size in pixels (.mp4 pads odd sides to even).

    Raises UsageError naming the limit (MAX_VIDEO_SIDE) and what can be written instead.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in MAX_VIDEO_SIDE:
        return
    padded = (width + width % 2, height + height % 2) if suffix == ".mp4" else (width, height)
    limit = MAX_VIDEO_SIDE[suffix]
    if max(padded) > limit or (padded[0] + 128) * (padded[1] + 128) >= _MAX_PICTURE:
        encoder = _ENCODERS[suffix][0]
        raise UsageError(
            f"{path}: {width}x{height} px is more than ffmpeg's {encoder} encodes (at most {limit} px a side); "
            "choose a smaller --size, or write PNG frames (-o a name without suffix) or latents (-o NAME.safetensors)"
        )


def _require_frames_folder(path: Path) -> None:
    # A frames folder is replaced whole; never a folder that holds anything else.
    if path.is_dir() and any(not FRAME_NAME.fullmatch(entry.name) for entry in path.iterdir()):
        raise UsageError(
            f"{path}: the folder holds other files, and a frames output replaces its folder whole; "
            "give a new or empty folder, or a video name such as out.mp4"
        )


def read_comment(path: str | os.PathLike[str]) -> str | None:
    """The comment tag of a video file (mp4, webm, …; ``ffmpeg -f ffmetadata``) or of a folder of PNG
    frames (its first frame's ``Comment`` text chunk); None where there is none. Nothing is decoded
    but the container's tags.

    Args:
        path: a video file or a frames folder.
    """
    path = Path(path)
    if path.is_dir():
        frames = sorted(file for file in path.iterdir() if FRAME_NAME.fullmatch(file.name)) or folder_images(path)
        try:
            with _png_text_limits(), Image.open(frames[0]) as image:
                text = getattr(image, "text", {}).get(PNG_COMMENT_KEY)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise _unreadable_image(frames[0], error) from error
        return text if isinstance(text, str) else None
    _check_video_file(path)
    import subprocess

    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "ffmetadata", "-"]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path}: ffmpeg cannot read its tags ({reason[-1] if reason else 'no reason given'})")
    return _ffmetadata_value(result.stdout.decode(errors="replace"), "comment")


def _ffmetadata_value(listing: str, key: str) -> str | None:
    """``key``'s value (any case) in the global section of an ffmetadata listing, unescaped.

    ffmetadata escapes ``=``, ``;``, ``#``, ``\\`` and newlines with a backslash; an escaped newline
    continues the value on the next line.
    """
    lines = iter(listing.split("\n"))
    for line in lines:
        if line.startswith("["):
            return None  # stream and chapter sections follow the global tags
        name, separator, value = line.partition("=")
        if not separator or name.lower() != key:
            continue
        while (len(value) - len(value.rstrip("\\"))) % 2:  # an odd backslash at the end escapes the newline
            value = value[:-1] + "\n" + next(lines, "")
        return re.sub(r"\\(.)", r"\1", value, flags=re.DOTALL)
    return None


class _Abort(BaseException):
    """Thrown into write_frames: a BaseException makes it kill ffmpeg instead of waiting for it."""


class VideoWriter:
    """Streams frames to an output chosen by the path's suffix, atomically.

    .mp4 is H.264 (libx264, yuv420p, odd sizes padded to even; plays in browsers), .webm is
    VP9, .gif uses ffmpeg's gif encoder with a palette computed for the clip, and a path
    without a video suffix becomes a folder of PNGs named frame_00000.png, frame_00001.png, ...
    Everything is written under a temporary name that replaces ``path`` only on close();
    an exception inside ``with VideoWriter(...)`` (or Ctrl-C) leaves nothing behind.

    Args:
        path: the output file or folder.
        fps: frames per second, more than 0.
        quality: 1 (smallest) to 10 (best) for .mp4 and .webm, imageio's scale (6 is x264
            CRF 20, VP9 CRF 25); ignored for .gif and PNGs.
        comment: text for the output's comment tag (.mp4, .webm; a compressed ``Comment`` text
            chunk in every PNG frame); .gif keeps none. ``read_comment`` reads it back.
        sound: a WAV file to put in the video as its sound track (.mp4: AAC, .webm: Opus; see
            ``holds_sound``); None for a silent video.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, quality: int = 6, comment: str | None = None,
                 sound: str | os.PathLike[str] | None = None) -> None:
        if not fps > 0:
            raise UsageError(f"--fps {fps}: must be more than 0")
        if not 1 <= quality <= 10:
            raise UsageError(f"--quality {quality}: must be from 1 (smallest file) to 10 (best)")
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        self.kind = output_kind(self.path)
        if comment is not None and len(comment.encode()) > MAX_COMMENT_BYTES:
            warnings.warn(Note(f"{self.path}: its comment tag ({len(comment.encode())} bytes) is longer than a video tag "
                               f"can be ({MAX_COMMENT_BYTES}); the video is written without it"))
            comment = None
        self.comment = comment
        if sound is not None and not holds_sound(self.path):
            raise ValueError(f"{self.path}: holds no sound; check holds_sound first")
        self.sound = sound
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height), fixed by the first frame
        self._encoder: Any = None  # the imageio_ffmpeg.write_frames generator, once started
        self._atomic = atomic_output(self.path, directory=self.kind == "folder")
        self._temporary: Path = self._atomic.__enter__()
        self._open = True

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame must have the first frame's size.

        Args:
            frame: (H, W, 3) uint8 RGB.
        """
        if not self._open:
            raise ValueError(f"{self.path}: the writer is closed")
        _check_frame(frame)
        size = (frame.shape[1], frame.shape[0])
        if self.size is None:
            try:
                check_video_size(self.path, *size)
            except UsageError:
                self._abort()
                raise
            self.size = size
        elif size != self.size:
            raise ValueError(f"frame {self.frames_written} is {size[0]}x{size[1]}, the video is {self.size[0]}x{self.size[1]}")
        if self.kind == "folder":
            self._write_png(frame)
        else:
            self._send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def _write_png(self, frame: np.ndarray) -> None:
        target = self._temporary / f"frame_{self.frames_written:05d}.png"  # matches FRAME_NAME
        info = None
        if self.comment is not None:
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_itxt(PNG_COMMENT_KEY, self.comment, zip=True)
        try:
            Image.fromarray(frame).save(target, pnginfo=info)
        except OSError as error:
            self._abort()
            raise OutputError(f"cannot write {self.path}: {error}; check the free space and permissions") from error

    def _send(self, frame: np.ndarray) -> None:
        try:
            if self._encoder is None:
                self._encoder = self._start_encoder()
            self._encoder.send(frame)
        except OSError as error:
            self._abort()
            raise OutputError(f"cannot write {self.path}: ffmpeg stopped ({_ffmpeg_reason(error)})") from error

    def _start_encoder(self) -> Any:
        import imageio_ffmpeg

        suffix = self.path.suffix.lower()
        codec, muxer, pix_fmt = _ENCODERS[suffix]
        quality: int | None = self.quality
        output_params = ["-f", muxer]
        if self.comment is not None and suffix in COMMENT_SUFFIXES:
            output_params += ["-metadata", f"comment={self.comment}"]  # mp4's ©cmt atom, Matroska's COMMENT tag
        if suffix == ".mp4":
            # libx264 with yuv420p needs even sizes: pad by one black pixel rather than rescale.
            output_params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart"]
        elif suffix == ".webm":
            # write_frames maps quality to -qscale:v, which libvpx ignores; use constant quality.
            quality = None
            crf = round((1 - self.quality / 10) * 63)
            output_params += ["-crf", str(crf), "-b:v", "0", "-row-mt", "1", "-cpu-used", "4"]
        else:
            # One palette made from the whole clip looks far better than ffmpeg's fixed one.
            quality = None
            output_params += ["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-loop", "0"]
        sound = {"audio_path": str(self.sound), "audio_codec": _SOUND_ENCODERS[suffix]} if self.sound is not None else {}
        encoder = imageio_ffmpeg.write_frames(
            str(self._temporary),
            self.size,
            fps=self.fps,
            codec=codec,
            pix_fmt_out=pix_fmt,
            quality=quality,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=output_params,
            **sound,
        )
        encoder.send(None)  # run the generator to its first yield, where it waits for frames
        return encoder

    def close(self) -> None:
        """Finish the output and move it onto ``path``; raises OutputError when nothing was written."""
        if not self._open:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"cannot write {self.path}: no frames were given")
            if self._encoder is not None:
                self._encoder.close()  # waits for ffmpeg to encode the rest and write the file
                if self._temporary.stat().st_size == 0:
                    raise OutputError(f"cannot write {self.path}: ffmpeg wrote nothing (see its message above)")
        except BaseException:
            # Also on Ctrl-C while ffmpeg finishes: __exit__ does not run for errors raised in it.
            self._abort()
            raise
        self._open = False
        try:
            self._atomic.__exit__(None, None, None)
        except OSError as error:
            raise OutputError(f"cannot write {self.path}: {error.strerror}; check the folder's permissions") from error

    def _abort(self) -> None:
        """Stop ffmpeg and delete the temporary output."""
        if not self._open:
            return
        self._open = False
        if self._encoder is not None:
            try:
                self._encoder.throw(_Abort())
            except (_Abort, StopIteration, OSError):
                pass
        self._atomic.__exit__(_Abort, _Abort(), None)  # an exception makes atomic_output delete

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()
