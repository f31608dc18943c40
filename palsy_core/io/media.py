"""Media ingestion: a photo or video (path, bytes or upload) becomes upright RGB uint8 frames.

Photos are decoded with Pillow, videos are streamed with PyAV (FFmpeg) so a long video is never
held in memory. The first bytes are sniffed before any decoder runs, so a renamed PDF, text file
or empty upload fails with a clear reason instead of a decoder traceback. Every failure is a
``MediaError`` whose message starts with the file name.

The file extension decides the kind (``media_kind``), as the pipeline does; content of the other
kind (a JPEG named ``.mp4``) is refused rather than guessed, so kind and content never disagree.
"""

from __future__ import annotations

import codecs
import io
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Source = str | Path | bytes | BinaryIO
MediaKind = Literal["photo", "video"]

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif",
                              ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv"})

# Pillow's own bomb limit (~89 MP warns, ~179 MP raises) is process-global; this explicit limit is
# checked from the header, before any pixel is decoded (phones save 12-50 MP photos by default).
MAX_PIXELS = 80_000_000
# Below this many pixels on a side no face can pass the small-face check (an interocular distance
# of 28 px needs a face about 64 px wide), so such files are refused rather than scored.
MIN_SIDE = 64

_HEAD_BYTES = 64
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1")
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(b"\t\n\r\f") | frozenset(range(0x80, 0x100))

log = logging.getLogger(__name__)


class MediaError(ValueError):
    """A file that cannot be used as a photo or video; the message names the file and why."""


@dataclass
class VideoInfo:
    """Stream facts, with width/height as displayed (after rotation, square pixels).

    ``rotation`` is the clockwise turn in degrees (0/90/180/270) that makes stored frames upright,
    like a phone's ``rotate`` tag; ``mirrored`` is a horizontal flip applied before it. Unknown
    durations are 0.0.
    """

    width: int
    height: int
    fps: float
    duration_s: float
    n_frames_estimate: int
    rotation: int
    mirrored: bool = False


@dataclass(frozen=True)
class Frame:
    """One upright RGB uint8 frame; ``index`` counts decoded frames in the stream (0 for photos)."""

    index: int
    timestamp_s: float
    rgb: np.ndarray


def media_kind(name: str | Path) -> MediaKind:
    """Photo or video from the file extension (case-insensitive)."""
    suffix = Path(name).suffix.lower()
    if suffix in PHOTO_EXTENSIONS:
        return "photo"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    raise MediaError(
        f"{name}: unsupported file type {suffix or '(no extension)'!r}; supported photos: "
        f"{', '.join(sorted(PHOTO_EXTENSIONS))}; videos: {', '.join(sorted(VIDEO_EXTENSIONS))}"
    )


# --- sources and content sniffing ------------------------------------------------------------


def _resolve(source: Source, name: str | Path | None) -> tuple[str | BinaryIO, str, bytes]:
    """(what decoders open, name for messages, first bytes). File-likes keep their position."""
    if isinstance(source, str | Path):
        path = Path(source)
        label = str(name or path.name)
        try:
            with path.open("rb") as fh:
                head = fh.read(_HEAD_BYTES)
        except OSError as exc:
            raise MediaError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
        return str(path), label, head
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return io.BytesIO(data), str(name or "<bytes>"), data[:_HEAD_BYTES]
    label = str(name or Path(getattr(source, "name", "") or "<stream>").name)
    if not source.seekable():
        raise MediaError(f"{label}: the stream is not seekable; pass bytes or a file path")
    start = source.tell()
    head = source.read(_HEAD_BYTES)
    source.seek(start)
    return source, label, head


def _sniff(head: bytes) -> tuple[str | None, str]:
    """(kind, label) from magic bytes: kind is photo, video or other; None when not recognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "photo", "JPEG photo"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "photo", "PNG photo"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "photo", "TIFF photo"
    if head.startswith(b"BM"):
        return "photo", "BMP photo"
    if head.startswith(b"RIFF"):
        riff = {b"WEBP": ("photo", "WebP photo"), b"AVI ": ("video", "AVI video"),
                b"WAVE": ("other", "WAV audio")}
        return riff.get(head[8:12], (None, "RIFF data"))
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video", "Matroska/WebM video"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "other", "HEIC/HEIF image, which is not supported: export it as JPEG"
    if head[4:8] in _MP4_BOXES:
        return "video", "MP4/QuickTime video"
    if head.startswith(b"%PDF"):
        return "other", "PDF"
    if head.startswith(b"PK\x03\x04"):
        return "other", "ZIP archive"
    if head.startswith(b"ID3"):
        return "other", "MP3 audio"
    if _is_text(head):
        return "other", "text"
    return None, "unknown data"


def _is_text(head: bytes) -> bool:
    """No control bytes but whitespace, and valid UTF-8 (a character cut at the end is fine)."""
    if not set(head) <= _TEXT_BYTES:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _check_content(head: bytes, name: str, want: MediaKind) -> None:
    """Refuse empty files and content that is clearly not a ``want``."""
    if not head:
        raise MediaError(f"{name}: empty file")
    kind, label = _sniff(head)
    if kind == "other":
        raise MediaError(f"{name}: not a video or photo (looks like {label})")
    if kind is not None and kind != want:
        raise MediaError(f"{name}: not a {want} (looks like a {label}); check the file extension")


def _check_size(width: int, height: int, name: str) -> None:
    """Refuse pictures too small to hold a usable face (a size of 0 means unknown)."""
    if 0 < min(width, height) < MIN_SIDE:
        raise MediaError(f"{name}: too small ({width}x{height} px) to show a face; at least "
                         f"{MIN_SIDE} px on each side are needed")


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size with the long side at most ``max_side``, aspect kept (no upscaling)."""
    scale = max_side / max(width, height) if max_side else 1.0
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


# --- photos -----------------------------------------------------------------------------------


def load_photo(
    source: Source, max_side: int | None = 1920, *, name: str | Path | None = None
) -> np.ndarray:
    """Upright RGB uint8 (H, W, 3) photo, long side at most ``max_side`` (None keeps full size).

    EXIF orientation is applied. Transparent pixels are composited on white: the colour under
    alpha 0 is arbitrary (often black) and a plain background keeps the face detector on the
    face. Grayscale, palette and CMYK are converted; 16-bit and float images are scaled from
    their full range (0..65535, float 0..1) to 0..255, or stretched min..max when values exceed
    it, never clipped. ``name`` labels errors when ``source`` is bytes or a stream.
    """
    target, label, head = _resolve(source, name)
    _check_content(head, label, "photo")
    try:
        with Image.open(target) as im:
            if im.width * im.height > MAX_PIXELS:
                raise MediaError(
                    f"{label}: image too large ({im.width}x{im.height} = "
                    f"{im.width * im.height / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP)"
                )
            _check_size(im.width, im.height, label)
            im.draft(None, _fit(im.width, im.height, max_side))  # JPEG: decode at reduced scale
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # in place: a big photo is held only once
            rgb = _to_rgb(im)
            size = _fit(rgb.width, rgb.height, max_side)
            if size != rgb.size:
                rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            return np.array(rgb, dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{label}: image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(f"{label}: not a photo Pillow can read (unrecognised content)") from exc
    except (OSError, SyntaxError) as exc:  # Pillow's decoders raise SyntaxError for bad chunks
        raise MediaError(f"{label}: truncated/corrupt photo ({exc})") from exc


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB (alpha on white, high bit depth rescaled)."""
    if im.mode.startswith("I") or im.mode == "F":
        full_scale = 1.0 if im.mode == "F" else 65535.0
        gray = _scale_to_uint8(np.asarray(im, dtype=np.float64), full_scale)
        return Image.fromarray(gray).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im.convert("RGBA")).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _scale_to_uint8(values: np.ndarray, full_scale: float) -> np.ndarray:
    """Map 0..full_scale to 0..255; data outside that range are stretched min..max instead."""
    lo, hi = float(values.min()), float(values.max())
    if lo < 0.0 or hi > full_scale:
        values, full_scale = values - lo, max(hi - lo, 1e-12)
    return np.rint(values * (255.0 / full_scale)).astype(np.uint8)


# --- videos -----------------------------------------------------------------------------------


@contextmanager
def _open_video(target: str | BinaryIO, name: str) -> Iterator[tuple[av.container.InputContainer,
                                                                       av.video.stream.VideoStream]]:
    """Open the container and pick its video stream; closed on exit."""
    try:
        # Metadata tags are often not UTF-8 (phones, editors, damage): replace, never fail.
        container = av.open(target, mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        raise MediaError(f"{name}: truncated/corrupt video (FFmpeg: {reason})") from exc
    try:
        videos = [s for s in container.streams.video
                  if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            what = " (audio only)" if container.streams.audio else ""
            raise MediaError(f"{name}: no video stream{what}")
        stream = videos[0]
        if stream.codec_context is None:
            raise MediaError(f"{name}: no decoder for its video codec (unsupported or corrupt)")
        stream.codec_context.thread_type = "AUTO"
        _check_size(stream.codec_context.width, stream.codec_context.height, name)
        yield container, stream
    finally:
        container.close()


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             name: str) -> Iterator[av.VideoFrame]:
    """Frames in presentation order, tolerant like a player: undecodable packets are skipped and
    a damaged or truncated tail ends the stream (both logged as a warning)."""
    packets = container.demux(stream)
    skipped, cut = 0, False
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            cut = True
            break
        try:
            frames = packet.decode()
        except av.FFmpegError:
            skipped += 1
            continue
        yield from frames
    if skipped or cut:
        log.warning("%s: %d undecodable packet(s) skipped%s", name, skipped,
                    "; the stream ends early (damaged or truncated)" if cut else "")


def _orientation(frame: av.VideoFrame) -> tuple[int, bool]:
    """(clockwise degrees, mirrored) that display the frame upright, from its display matrix.

    The matrix maps stored pixel (x, y) to displayed (a*x + c*y, b*x + d*y) with y downwards
    (ISO/IEC 14496-12). A mirrored matrix is read as a horizontal flip followed by a rotation.
    """
    matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if matrix is None:
        return 0, False
    m = np.frombuffer(bytes(matrix), dtype=np.int32).astype(np.float64) / 65536.0
    a, b, c, d = m[0], m[1], m[3], m[4]
    sign = -1.0 if a * d - b * c < 0 else 1.0
    degrees = math.degrees(math.atan2(sign * b, sign * a))
    return round(degrees / 90.0) % 4 * 90, sign < 0


def _display_size(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> tuple[int, int]:
    """Stored frame size with non-square pixels made square (before rotation)."""
    sar = stream.sample_aspect_ratio
    width = round(frame.width * sar) if sar and sar != 1 else frame.width
    return width, frame.height


def _timestamp(frame: av.VideoFrame, index: int, stream: av.video.stream.VideoStream,
               name: str) -> float:
    """Seconds from the stream start: pts * time_base (exact under variable frame rate)."""
    if frame.pts is not None:
        return float((frame.pts - (stream.start_time or 0)) * stream.time_base)
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise MediaError(f"{name}: video has neither timestamps nor a frame rate")
    return float(index / rate)


def _upright(frame: av.VideoFrame, stream: av.video.stream.VideoStream,
             max_side: int | None) -> np.ndarray:
    """RGB uint8 frame, square pixels, long side at most ``max_side``, rotated upright."""
    width, height = _fit(*_display_size(frame, stream), max_side)
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    rotation, mirrored = _orientation(frame)
    if mirrored:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(np.rot90(rgb, k=-rotation // 90))


def probe_video(source: Source, *, name: str | Path | None = None) -> VideoInfo:
    """Size, rate, duration and orientation; decodes only the first frame (which it validates)."""
    target, label, head = _resolve(source, name)
    _check_content(head, label, "video")
    with _open_video(target, label) as (container, stream):
        first = next(_decoded(container, stream, label), None)
        if first is None:
            raise MediaError(f"{label}: truncated/corrupt video (no frame could be decoded)")
        rotation, mirrored = _orientation(first)
        width, height = _display_size(first, stream)
        if rotation in (90, 270):
            width, height = height, width
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        return VideoInfo(width=width, height=height, fps=fps, duration_s=duration,
                         n_frames_estimate=stream.frames or round(duration * fps),
                         rotation=rotation, mirrored=mirrored)


def iter_video_frames(
    source: Source,
    sample_fps: float = 5.0,
    max_frames: int | None = 300,
    max_side: int | None = 1280,
    *,
    name: str | Path | None = None,
) -> Iterator[Frame]:
    """Stream upright frames sampled at ``sample_fps`` (0: every frame), at most ``max_frames``.

    Sampling is by timestamp, not frame count: the first frame in each 1/sample_fps interval
    is kept, which stays correct under variable frame rate. Frames are decoded lazily and the
    container is closed when the iterator ends or is closed (``contextlib.closing`` releases it
    early). A truncated or partly corrupt video yields the frames that decode and then stops
    (logged); it raises ``MediaError`` only when no frame decodes. Errors are raised when
    iteration starts.
    """
    if sample_fps < 0 or (max_frames is not None and max_frames < 0):
        raise ValueError(f"sample_fps and max_frames must be >= 0, got {sample_fps}, {max_frames}")
    target, label, head = _resolve(source, name)
    _check_content(head, label, "video")
    with _open_video(target, label) as (container, stream):
        last_slot, count, broken = -math.inf, 0, 0
        for index, frame in enumerate(_decoded(container, stream, label)):
            t = _timestamp(frame, index, stream, label)
            if sample_fps:
                slot = math.floor(t * sample_fps + 1e-6)
                if slot <= last_slot:
                    continue
                last_slot = slot
            try:
                rgb = _upright(frame, stream, max_side)
            except av.FFmpegError:  # a damaged frame FFmpeg cannot convert: skipped like a packet
                broken += 1
                continue
            yield Frame(index=index, timestamp_s=t, rgb=rgb)
            count += 1
            if max_frames and count >= max_frames:
                break
        if broken:
            log.warning("%s: %d damaged frame(s) skipped", label, broken)
        if count == 0:
            raise MediaError(f"{label}: truncated/corrupt video (no frame could be decoded)")


def iter_media_frames(
    source: Source, name: str | Path, sample_fps: float = 5.0, max_frames: int | None = 300
) -> Iterator[Frame]:
    """Frames of a photo (one Frame, index 0 at 0.0 s) or a video; ``name`` gives the kind."""
    if media_kind(name) == "photo":
        yield Frame(index=0, timestamp_s=0.0, rgb=load_photo(source, name=name))
    else:
        yield from iter_video_frames(source, sample_fps, max_frames, name=name)
