"""Fuzzing the loaders with random and mutated bytes: the photo loader, the streaming video
decoder and the manifest parser either return usable data or raise their documented error
(``MediaError``, ``ManifestError``), never anything else, and never hang.

The mutated inputs start from real files (a real face encoded in every supported photo format
and container), so the fuzzer gets past the magic bytes into the decoders and their metadata
parsers (EXIF, PNG chunks, MP4 boxes, Matroska elements).
"""

from __future__ import annotations

import functools
import io
import tempfile
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from palsy_core.io.manifest import ManifestError, ManifestRow, read_manifest
from palsy_core.io.media import MediaError, iter_video_frames, load_photo
from palsy_core.io.samples import pyfeat_samples

# Damaged files make Pillow warn (and then fail or decode partly): expected here.
pytestmark = pytest.mark.filterwarnings("ignore:(Truncated File Read|Corrupt EXIF):UserWarning")

PHOTO_SEEDS = ("face.jpg", "cmyk.jpg", "rgba.png", "palette.png", "deep.png", "face.webp",
               "face.bmp", "face.tiff")
VIDEO_SEEDS = {"clip.mp4": "mpeg4", "clip.mkv": "libx264", "clip.avi": "mjpeg",
               "clip.webm": "libvpx"}


def fuzz(examples: int) -> settings:
    """Deterministic (the same examples on every run) and modest, for a shared CI machine.

    Examples normally take milliseconds: the deadline only catches pathological slowness, and
    pytest-timeout (the marks below) a hang.
    """
    return settings(max_examples=examples, deadline=timedelta(seconds=30), derandomize=True,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _photo_bytes(face: np.ndarray) -> dict[str, bytes]:
    """A real face in every photo format and mode the loader handles, small enough to fuzz."""
    small = Image.fromarray(face).resize((96, 96), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate, so exif_transpose runs on fuzzed EXIF
    out: dict[str, bytes] = {}

    def save(name: str, im: Image.Image, fmt: str, **kw) -> None:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("face.jpg", small, "JPEG", quality=80, exif=exif)  # names: PHOTO_SEEDS
    save("cmyk.jpg", small.convert("CMYK"), "JPEG")
    save("rgba.png", small.convert("RGBA"), "PNG")
    save("palette.png", small.convert("P"), "PNG", transparency=0)
    save("deep.png", Image.fromarray(np.asarray(small.convert("L"), np.uint16) * 257), "PNG")
    save("face.webp", small, "WEBP", quality=80)
    save("face.bmp", small, "BMP")
    save("face.tiff", small, "TIFF", exif=exif)
    return out


def _video_bytes(face: np.ndarray) -> dict[str, bytes]:
    """Six frames of a real face (slightly moving) in each container/codec pair."""
    small = np.asarray(Image.fromarray(face).resize((64, 64), Image.Resampling.LANCZOS))
    frames = [np.roll(small, i, axis=1) for i in range(6)]
    out = {}
    for name, codec in VIDEO_SEEDS.items():
        buf = io.BytesIO()
        with av.open(buf, "w", format=Path(name).suffix[1:].replace("mkv", "matroska")) as c:
            stream = c.add_stream(codec, rate=10)
            stream.width = stream.height = 64
            stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 10)
                c.mux(stream.encode(frame))
            c.mux(stream.encode())
        out[name] = buf.getvalue()
    return out


@functools.cache
def _originals(kind: str) -> dict[str, bytes]:
    """The fuzz seeds, made once per session from a real face (kept out of test arguments so a
    failure report shows the mutation, not kilobytes of file)."""
    face = np.asarray(Image.open(pyfeat_samples() / "single_face.jpg").convert("RGB"))
    return _photo_bytes(face) if kind == "photo" else _video_bytes(face)


OPS = st.tuples(st.sampled_from(("overwrite", "overwrite", "insert", "cut", "truncate", "dup")),
                st.floats(0.0, 1.0), st.binary(min_size=1, max_size=16), st.integers(1, 256))


def mutations(names):
    """(name, ops): which seed and a few edits to make (see ``_mutate``)."""
    return st.tuples(st.sampled_from(sorted(names)), st.lists(OPS, min_size=1, max_size=6))


def _mutate(data: bytes, ops) -> bytes:
    """Overwrite, insert, cut, truncate or duplicate bytes at relative positions."""
    out = bytearray(data)
    for op, where, payload, length in ops:
        pos = min(int(where * len(out)), max(len(out) - 1, 0))
        if op == "overwrite":
            out[pos:pos + len(payload)] = payload
        elif op == "insert":
            out[pos:pos] = payload
        elif op == "cut":
            del out[pos:pos + length]
        elif op == "truncate":
            del out[pos:]
        else:
            out[pos:pos] = out[pos:pos + length]
    return bytes(out)


def _check_photo(data: bytes, name: str) -> None:
    try:
        rgb = load_photo(data, name=name)
    except MediaError as exc:
        assert str(exc).startswith(f"{name}: ")
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def _check_video(data: bytes, name: str) -> None:
    try:
        frames = list(iter_video_frames(data, sample_fps=0, max_frames=8, name=name))
    except MediaError as exc:
        assert str(exc).startswith(f"{name}: ")
        return
    assert frames, "a video either yields frames or raises MediaError"
    for frame in frames:
        assert frame.rgb.dtype == np.uint8 and frame.rgb.ndim == 3 and frame.rgb.shape[2] == 3
        assert np.isfinite(frame.timestamp_s)


@pytest.mark.timeout(600)
@fuzz(200)
@given(data=st.binary(max_size=4096), name=st.sampled_from(("x.jpg", "x.png", "x.webp")))
def test_photo_loader_on_random_bytes(data, name):
    _check_photo(data, name)


@pytest.mark.timeout(600)
@fuzz(300)
@given(case=mutations(PHOTO_SEEDS))
@example(case=("deep.png", [("overwrite", 0.98828125, b"\x00", 1),  # Pillow's SyntaxError
                            ("insert", 0.984375, b"\x00", 1)]))
def test_photo_loader_on_mutated_real_photos(case):
    name, ops = case
    _check_photo(_mutate(_originals("photo")[name], ops), name)


def test_photo_seeds_are_valid_photos_of_the_face():
    """Mutations start from files the loader reads, so they reach deep into the decoders."""
    assert sorted(_originals("photo")) == sorted(PHOTO_SEEDS)
    for name, data in _originals("photo").items():
        assert load_photo(data, name=name).shape == (96, 96, 3), name


@pytest.mark.timeout(600)
@fuzz(60)
@given(data=st.binary(max_size=4096), name=st.sampled_from(("x.mp4", "x.mkv", "x.avi")))
def test_video_decoder_on_random_bytes(data, name):
    _check_video(data, name)


@pytest.mark.timeout(600)
@fuzz(150)
@given(case=mutations(VIDEO_SEEDS))
@example(case=("clip.mp4", [("overwrite", 0.8016664364936135, b"\x80", 1)]))  # unconvertible
def test_video_decoder_on_mutated_real_videos(case):
    name, ops = case
    _check_video(_mutate(_originals("video")[name], ops), name)


def test_damage_found_by_fuzzing_gets_a_clear_reason():
    """Cases the fuzzer found, kept as fixed examples: undecodable metadata text, an unknown
    codec, a damaged frame FFmpeg cannot convert, a broken PNG chunk."""
    videos = _originals("video")
    for name in ("clip.mp4", "clip.mkv"):  # the muxer's tag "Lavf..." made invalid UTF-8
        frames = list(iter_video_frames(videos[name].replace(b"Lavf", b"\x80avf"), sample_fps=0,
                                        name=name))
        assert len(frames) == 6, name
    unknown = videos["clip.mkv"].replace(b"V_MPEG4/ISO/AVC", b"V_QWERT/ISO/AVC")
    with pytest.raises(MediaError, match=r"codec\.mkv: no decoder for its video codec"):
        list(iter_video_frames(unknown, name="codec.mkv"))
    damaged = _mutate(videos["clip.mp4"], [("overwrite", 0.8016664364936135, b"\x80", 1)])
    with pytest.raises(MediaError, match=r"x\.mp4: truncated/corrupt video \(no frame could"):
        list(iter_video_frames(damaged, name="x.mp4"))
    broken = _mutate(_originals("photo")["deep.png"], [("overwrite", 0.98828125, b"\x00", 1),
                                                        ("insert", 0.984375, b"\x00", 1)])
    with pytest.raises(MediaError, match=r"d\.png: truncated/corrupt photo \(broken PNG file"):
        load_photo(broken, name="d.png")


def test_video_seeds_are_valid_videos():
    for name, data in _originals("video").items():
        frames = list(iter_video_frames(data, sample_fps=0, max_frames=0, name=name))
        assert len(frames) == 6, name


MANIFEST = ("path,label,subject,side,source\n"
            "faces/a.jpg,healthy,s1,,web\n"
            "faces/b.png,palsy,s2,left,clinic\n"
            "clips/c.mp4,Palsy,s3,right,\"phone, front\"\n")
CELLS = st.sampled_from(("faces/a.jpg", "clips/c.mp4", "../x.jpg", "/abs.png", "a\x00b.jpg",
                         "é测试.jpg", "x" * 300 + ".jpg", "healthy", "palsy", "sick", "left",
                         "up", "", " ", '"', "\r", "\n", ",", "\ufeff"))


def _check_manifest(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "faces").mkdir()
        (root / "faces" / "a.jpg").write_bytes(b"")
        path = root / "manifest.csv"
        path.write_bytes(data)
        for check_files in (True, False):
            try:
                rows = read_manifest(path, check_files=check_files)
            except ManifestError as exc:
                assert str(exc)
                continue
            assert rows and all(isinstance(r, ManifestRow) for r in rows)
            assert all(r.label in ("healthy", "palsy") and r.subject for r in rows)


@pytest.mark.timeout(600)
@fuzz(200)
@given(data=st.binary(max_size=2048))
def test_manifest_parser_on_random_bytes(data):
    _check_manifest(data)


@pytest.mark.timeout(600)
@fuzz(200)
@given(ops=st.lists(OPS, min_size=1, max_size=6))
def test_manifest_parser_on_mutated_manifests(ops):
    _check_manifest(_mutate(MANIFEST.encode(), ops))


@pytest.mark.timeout(600)
@fuzz(200)
@given(rows=st.lists(st.lists(CELLS | st.text(max_size=12), min_size=0, max_size=6),
                     max_size=6),
       encoding=st.sampled_from(("utf-8", "utf-8-sig", "utf-16", "latin-1")))
def test_manifest_parser_on_generated_tables(rows, encoding):
    text = "path,label,subject,side,source\n" + "\n".join(",".join(r) for r in rows)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    _check_manifest(data)
