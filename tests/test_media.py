"""Media ingestion on real faces: photo formats and modes, video containers, sampling, rotation,
and the clear errors for files that are not usable media."""

from __future__ import annotations

import io
import re
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import write_audio_only
from PIL import Image

from palsy_core.face.topology import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from palsy_core.io.media import (
    PHOTO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    MediaError,
    iter_media_frames,
    iter_video_frames,
    load_photo,
    media_kind,
    probe_video,
)


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _encode(path: Path, frames: list[np.ndarray], codec: str, *, pts_ms: list[int] | None = None,
            rotation: int = 0, hflip: bool = False) -> Path:
    """Write RGB frames with PyAV at a high bit rate (30 fps unless millisecond pts are given)."""
    try:
        av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        pytest.skip(f"this PyAV/FFmpeg build has no {codec} encoder")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.bit_rate = 20_000_000
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation or hflip:
            stream.set_display_rotation(rotation, hflip=hflip)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def clip(pyfeat_dir: Path) -> list[np.ndarray]:
    """The first 24 frames of single_face.mp4, decoded by PyAV directly (the reference)."""
    with av.open(str(pyfeat_dir / "single_face.mp4")) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 24:
                return frames
    raise AssertionError("single_face.mp4 has fewer than 24 frames")


# --- kinds ------------------------------------------------------------------------------------


def test_media_kind_by_extension():
    assert media_kind("a/b/Face.JPG") == "photo"
    assert media_kind(Path("clip.MoV")) == "video"
    assert {".jpg", ".png", ".webp", ".bmp", ".tiff"} <= PHOTO_EXTENSIONS
    assert {".mp4", ".mov", ".avi", ".webm", ".mkv"} <= VIDEO_EXTENSIONS
    unsupported = r"notes\.docx: unsupported file type '\.docx'; supported photos: .*\.jpg.*\.mp4"
    with pytest.raises(MediaError, match=unsupported):
        media_kind("notes.docx")


# --- photos -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "suffix", "save_args"), [
    ("PNG", ".png", {}),
    ("BMP", ".bmp", {}),
    ("TIFF", ".tiff", {}),
    ("WEBP", ".webp", {"lossless": True}),
])
def test_lossless_photo_formats_round_trip_exactly(face_rgb, tmp_path, fmt, suffix, save_args):
    path = tmp_path / f"face{suffix}"
    Image.fromarray(face_rgb).save(path, fmt, **save_args)
    np.testing.assert_array_equal(load_photo(path), face_rgb)


def test_jpeg_photo_round_trip(face_rgb, tmp_path):
    path = tmp_path / "face.jpeg"
    Image.fromarray(face_rgb).save(path, quality=95)
    assert _mae(load_photo(path), face_rgb) < 2.0


def test_grayscale_jpeg_is_downscaled_gray_rgb(pyfeat_dir):
    gray = np.asarray(Image.open(pyfeat_dir / "BWPictureHuman.jpg"))
    assert gray.ndim == 2 and gray.shape == (1912, 2560)
    rgb = load_photo(pyfeat_dir / "BWPictureHuman.jpg")
    assert rgb.shape == (1434, 1920, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert abs(rgb.mean() - gray.mean()) < 1.0
    full = load_photo(pyfeat_dir / "BWPictureHuman.jpg", max_side=None)
    np.testing.assert_array_equal(full[..., 0], gray)


def test_l_mode_png_is_replicated_to_three_channels(face_rgb, tmp_path):
    gray = np.asarray(Image.fromarray(face_rgb).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(load_photo(tmp_path / "gray.png"), np.dstack([gray] * 3))


@pytest.mark.parametrize(("mode", "suffix"), [("I;16", ".png"), ("I;16B", ".tif"), ("F", ".tif")])
def test_high_bit_depth_photos_are_scaled_not_clipped(face_rgb, tmp_path, mode, suffix):
    gray = np.asarray(Image.fromarray(face_rgb).convert("L"))
    if mode == "F":
        image = Image.fromarray(gray.astype(np.float32) / 255.0)
    else:
        wide = (gray.astype(np.uint32) * 257).astype(">u2" if mode == "I;16B" else "<u2")
        image = Image.frombuffer(mode, gray.shape[::-1], wide.tobytes(), "raw", mode, 0, 1)
    image.save(tmp_path / f"deep{suffix}")
    assert Image.open(tmp_path / f"deep{suffix}").mode == mode
    rgb = load_photo(tmp_path / f"deep{suffix}")
    assert abs(rgb.mean() - gray.mean()) < 0.5  # clipping to 255 would give a white image
    assert np.abs(rgb[..., 0].astype(int) - gray).max() <= 1


def test_alpha_is_composited_on_white(pyfeat_dir, face_rgb, tmp_path):
    rgba = np.asarray(Image.open(pyfeat_dir / "Image_with_alpha.png"))
    assert rgba.shape[2] == 4 and (rgba[..., 3] == 255).all()  # an opaque RGBA photo
    np.testing.assert_array_equal(load_photo(pyfeat_dir / "Image_with_alpha.png"), rgba[..., :3])
    alpha = np.full(face_rgb.shape[:2], 255, np.uint8)
    alpha[:, :100], alpha[:, -100:] = 0, 128  # a cut-out left border, a half-transparent right
    cutout = np.dstack([face_rgb, alpha])
    cutout[alpha == 0, :3] = 0  # the colour under alpha 0 is arbitrary, typically black
    Image.fromarray(cutout).save(tmp_path / "cutout.png")
    rgb = load_photo(tmp_path / "cutout.png").astype(int)
    assert (rgb[:, :100] == 255).all()
    np.testing.assert_array_equal(rgb[:, 100:-100], face_rgb[:, 100:-100])
    half = (face_rgb[:, -100:].astype(int) * 128 + 255 * 127) / 255
    assert np.abs(rgb[:, -100:] - half).max() <= 1


def test_cmyk_jpeg_is_converted_to_rgb(face_rgb, tmp_path):
    Image.fromarray(face_rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert _mae(load_photo(tmp_path / "cmyk.jpg"), face_rgb) < 3.0


# EXIF orientation -> how the upright picture was stored (the inverse of what a viewer applies)
_STORED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", sorted(_STORED))
def test_exif_orientation_is_applied(pyfeat_dir, tmp_path, orientation):
    upright = Image.open(pyfeat_dir / "multi_face.jpg").convert("RGB")
    stored = upright.transpose(_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "tagged.jpg", quality=95, exif=exif)
    rgb = load_photo(tmp_path / "tagged.jpg")
    assert rgb.shape == (upright.height, upright.width, 3)  # 667 x 1000, not 1000 x 667
    assert _mae(rgb, np.asarray(upright)) < 3.0


def test_exif_rotated_phone_photo_gives_an_upright_face(face_rgb, tmp_path, detector):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(face_rgb).transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "phone.jpg", quality=95, exif=exif)
    det = detector.detect(load_photo(tmp_path / "phone.jpg"))
    assert det is not None
    eyes = det.points[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER]]
    # upright and unmirrored: eyes level, the subject's left eye on the image right
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.2 * abs(eyes[1, 0] - eyes[0, 0])
    assert eyes[1, 0] > eyes[0, 0]


def test_photo_from_bytes_and_file_like_match_path(pyfeat_dir):
    path = pyfeat_dir / "single_face.jpg"
    expected = load_photo(path)
    np.testing.assert_array_equal(load_photo(path.read_bytes()), expected)
    np.testing.assert_array_equal(load_photo(io.BytesIO(path.read_bytes())), expected)
    with path.open("rb") as fh:
        np.testing.assert_array_equal(load_photo(fh), expected)
    frames = list(iter_media_frames(path.read_bytes(), "upload.JPG"))
    assert len(frames) == 1 and (frames[0].index, frames[0].timestamp_s) == (0, 0.0)
    np.testing.assert_array_equal(frames[0].rgb, expected)


def test_large_photo_is_downscaled_to_max_side(face_rgb, tmp_path):
    big = Image.fromarray(face_rgb).resize((4096, 4000), Image.Resampling.BICUBIC)
    big.save(tmp_path / "big.jpg", quality=95)
    rgb = load_photo(tmp_path / "big.jpg")
    assert rgb.shape == (1875, 1920, 3)
    assert load_photo(tmp_path / "big.jpg", max_side=800).shape == (781, 800, 3)
    small = np.asarray(big.resize((1920, 1875), Image.Resampling.LANCZOS))
    assert _mae(rgb, small) < 3.0


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb never has to be decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize("side", [9000, 20000])  # 81 MP (our limit), 400 MP (Pillow's too)
def test_decompression_bomb_is_refused(side):
    with pytest.raises(MediaError, match=r"bomb\.png: image too large"):
        load_photo(_png_header_only(side, side), name="bomb.png")


def test_truncated_photo(pyfeat_dir):
    data = (pyfeat_dir / "single_face.jpg").read_bytes()
    with pytest.raises(MediaError, match=r"cut\.jpg: truncated/corrupt photo"):
        load_photo(data[: len(data) // 2], name="cut.jpg")


# --- videos: sampling -------------------------------------------------------------------------


def test_sampling_at_5_fps_by_timestamp(pyfeat_dir, clip):
    frames = list(iter_video_frames(pyfeat_dir / "single_face.mp4", sample_fps=5))
    times = np.array([f.timestamp_s for f in frames])
    assert len(frames) == 12  # 2.4 s at 30 fps
    np.testing.assert_allclose(np.diff(times), 0.2, atol=1e-6)
    assert [f.index for f in frames] == list(range(0, 72, 6))
    assert all(f.rgb.shape == (360, 640, 3) and f.rgb.dtype == np.uint8 for f in frames)
    assert _mae(frames[0].rgb, clip[0]) < 1.0 and _mae(frames[3].rgb, clip[18]) < 1.0


def test_sampling_of_a_23_976_fps_video(pyfeat_dir):
    frames = list(iter_video_frames(pyfeat_dir / "WolfgangLanger_Pexels.mp4", 5, max_frames=None))
    times = np.array([f.timestamp_s for f in frames])
    info = probe_video(pyfeat_dir / "WolfgangLanger_Pexels.mp4")
    assert abs(len(frames) - info.duration_s * 5) <= 1
    assert (np.diff(times) > 0.2 - 1 / 23.976).all() and (np.diff(times) < 0.2 + 1 / 23.976).all()
    assert len(set(np.floor(times * 5 + 1e-6))) == len(frames)  # one frame per 0.2 s slot


def test_every_frame_when_sample_fps_is_zero(pyfeat_dir, clip):
    path = pyfeat_dir / "single_face.mp4"
    with av.open(str(path)) as container:
        n_frames = container.streams.video[0].frames
    frames = list(iter_video_frames(path, sample_fps=0, max_frames=None))
    assert len(frames) == n_frames == probe_video(path).n_frames_estimate == 72
    assert [f.index for f in frames] == list(range(72))
    assert (np.diff([f.timestamp_s for f in frames]) > 0).all()
    assert max(_mae(f.rgb, ref) for f, ref in zip(frames, clip, strict=False)) < 1.0


def test_max_frames_caps(pyfeat_dir):
    frames = list(iter_video_frames(pyfeat_dir / "single_face.mp4", sample_fps=5, max_frames=4))
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_variable_frame_rate_is_sampled_by_time(clip, tmp_path):
    # 50 fps for 0.2 s, then 10 fps: frame counting would give wrong times, timestamps do not
    pts = [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, *range(200, 1000, 100)]
    path = _encode(tmp_path / "vfr.mkv", clip[: len(pts)], "mpeg4", pts_ms=pts)
    frames = list(iter_video_frames(path, sample_fps=5, max_frames=None))
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert [f.index for f in frames] == [0, 10, 12, 14, 16]


def test_downscales_large_frames_to_max_side(pyfeat_dir):
    frame = next(iter_video_frames(pyfeat_dir / "single_face.mp4", max_side=320))
    assert frame.rgb.shape == (180, 320, 3)


# --- videos: containers, orientation, sources -------------------------------------------------


@pytest.mark.parametrize(("suffix", "codec"), [
    (".mov", "libx264"), (".avi", "mjpeg"), (".avi", "mpeg4"), (".webm", "libvpx"),
    (".mkv", "ffv1"), (".mp4", "mpeg4"),
])
def test_containers_decode(clip, tmp_path, suffix, codec):
    path = _encode(tmp_path / f"clip{suffix}", clip[:12], codec)
    frames = list(iter_video_frames(path, sample_fps=0))
    assert len(frames) == 12
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(12) / 30, atol=2e-3)
    assert max(_mae(f.rgb, ref) for f, ref in zip(frames, clip, strict=False)) < 6.0
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.fps == pytest.approx(30, rel=0.01)


# (display rotation counter-clockwise as PyAV writes it, hflip) ->
#     (how the upright frames are stored, expected VideoInfo (rotation clockwise, mirrored))
_ROTATIONS = {
    (-90, False): (lambda rgb: np.rot90(rgb, 1), (90, False)),  # phone portrait ('rotate=90')
    (90, False): (lambda rgb: np.rot90(rgb, -1), (270, False)),
    (180, False): (lambda rgb: np.rot90(rgb, 2), (180, False)),
    (0, True): (lambda rgb: rgb[:, ::-1], (0, True)),
}


@pytest.mark.parametrize(("rotation", "hflip"), sorted(_ROTATIONS))
def test_display_matrix_gives_upright_frames(clip, tmp_path, rotation, hflip):
    store, expected = _ROTATIONS[rotation, hflip]
    stored = [store(rgb) for rgb in clip[:6]]
    path = _encode(tmp_path / "rotated.mp4", stored, "mpeg4", rotation=rotation, hflip=hflip)
    with av.open(str(path)) as container:
        raw = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert raw.shape == stored[0].shape
    frames = list(iter_video_frames(path, sample_fps=0))
    assert len(frames) == 6
    for frame, upright in zip(frames, clip, strict=False):
        assert frame.rgb.shape == (360, 640, 3)
        assert _mae(frame.rgb, upright) < 4.0
    info = probe_video(path)
    assert (info.width, info.height, info.rotation, info.mirrored) == (640, 360, *expected)


def test_anamorphic_video_gets_square_pixels(clip, tmp_path):
    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 360, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(2, 1)
        for rgb in clip[:3]:
            squeezed = np.ascontiguousarray(rgb[:, ::2])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(squeezed, format="rgb24")))
        out.mux(stream.encode())
    frames = list(iter_video_frames(path, sample_fps=0))
    assert [f.rgb.shape for f in frames] == [(360, 640, 3)] * 3
    assert _mae(frames[0].rgb, clip[0]) < 10.0
    assert (probe_video(path).width, probe_video(path).height) == (640, 360)


class _CountingReader(io.BytesIO):
    """Counts the bytes a decoder has pulled so far."""

    pulled = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.pulled += len(data)
        return data


def test_video_is_streamed_lazily_from_a_file_like(pyfeat_dir):
    data = (pyfeat_dir / "WolfgangLanger_Pexels.mp4").read_bytes()
    reader = _CountingReader(data)
    frames = iter_video_frames(reader, sample_fps=0, max_frames=None, name="upload.mp4")
    first = next(frames)
    assert first.index == 0 and reader.pulled < len(data) / 2  # not decoded up front
    count = 1 + sum(1 for _ in frames)
    assert count == 472 and reader.pulled >= len(data) * 0.9
    assert not reader.closed  # the caller's stream is left open


def test_video_from_bytes_matches_path(pyfeat_dir):
    path = pyfeat_dir / "single_face.mp4"
    from_path = list(iter_video_frames(path, sample_fps=2))
    from_bytes = list(iter_media_frames(path.read_bytes(), "upload.MP4", 2, 300))
    assert [f.index for f in from_bytes] == [f.index for f in from_path] == [0, 15, 30, 45, 60]
    assert all(isinstance(f, Frame) for f in from_bytes)
    for a, b in zip(from_path, from_bytes, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_closing_the_iterator_early_is_clean(pyfeat_dir):
    frames = iter_video_frames(pyfeat_dir / "single_face.mp4", sample_fps=0)
    assert next(frames).index == 0
    frames.close()
    with pytest.raises(StopIteration):
        next(frames)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("notes.mp4", b"My notes, not a video.\n", r"not a video or photo \(looks like text\)"),
    ("scan.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", r"not a video or photo \(looks like PDF\)"),
    ("empty.mp4", b"", "empty file"),
    ("empty.jpg", b"", "empty file"),
    ("archive.png", b"PK\x03\x04\x14\x00\x00\x00\x08\x00", r"looks like ZIP archive"),
    ("phone.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", r"HEIC/HEIF.*export it as JPEG"),
])
def test_unusable_files_get_specific_reasons(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    for source in (path, content, io.BytesIO(content)):
        with pytest.raises(MediaError, match=rf"{re.escape(name)}: .*{reason}"):
            list(iter_media_frames(source, name))


def test_media_of_the_other_kind_is_refused(pyfeat_dir):
    with pytest.raises(MediaError, match=r"face\.mp4: not a video \(looks like a JPEG photo\)"):
        list(iter_media_frames((pyfeat_dir / "single_face.jpg").read_bytes(), "face.mp4"))
    with pytest.raises(MediaError, match=r"clip\.png: not a photo \(looks like a MP4"):
        load_photo(pyfeat_dir / "single_face.mp4", name="clip.png")


def test_audio_only_file(tmp_path):
    path = write_audio_only(tmp_path / "voice.mp4")
    with pytest.raises(MediaError, match=r"voice\.mp4: no video stream \(audio only\)"):
        list(iter_video_frames(path))
    with pytest.raises(MediaError, match=r"no video stream \(audio only\)"):
        probe_video(path)


def test_truncated_video_with_index_at_the_end_is_refused(pyfeat_dir):
    data = (pyfeat_dir / "single_face.mp4").read_bytes()
    assert data.find(b"moov") > len(data) * 0.3  # the index is past the cut
    with pytest.raises(MediaError, match=r"cut\.mp4: truncated/corrupt video"):
        list(iter_video_frames(data[: int(len(data) * 0.3)], name="cut.mp4"))
    with pytest.raises(MediaError, match="truncated/corrupt video"):
        probe_video(data[: int(len(data) * 0.3)], name="cut.mp4")


def test_truncated_streamable_video_yields_the_frames_before_the_cut(pyfeat_dir, clip, tmp_path):
    streamable = tmp_path / "faststart.mp4"
    with av.open(str(pyfeat_dir / "single_face.mp4")) as src, \
            av.open(str(streamable), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = streamable.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    assert len(list(iter_video_frames(data, sample_fps=0, name="full.mp4"))) == 72
    frames = list(iter_video_frames(data[: int(len(data) * 0.3)], sample_fps=0, name="cut.mp4"))
    assert 0 < len(frames) < 72
    assert [f.index for f in frames] == list(range(len(frames)))
    assert max(_mae(f.rgb, ref) for f, ref in zip(frames, clip, strict=False)) < 1.0


def test_unseekable_stream_is_refused():
    class Pipe(io.RawIOBase):
        def seekable(self) -> bool:
            return False

    with pytest.raises(MediaError, match=r"<stream>: the stream is not seekable"):
        load_photo(Pipe())


def test_invalid_sampling_arguments(pyfeat_dir):
    with pytest.raises(ValueError, match="sample_fps and max_frames must be >= 0"):
        next(iter_video_frames(pyfeat_dir / "single_face.mp4", sample_fps=-1))
