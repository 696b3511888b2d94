"""Tests for annowidget.store.images: every bad file is generated in tmp_path with PIL."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import struct
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from annowidget.store import images
from annowidget.store.images import (
    DisplayImage,
    ImageError,
    decode_for_model,
    display_bytes,
    load_rgb,
    probe_image,
    thumbnail,
)

RACCOON = Path(__file__).parents[1].parent / "shared" / "data" / "raccoon"
needs_raccoon = pytest.mark.skipif(
    not (RACCOON / "images").is_dir(), reason=f"raccoon dataset not found at {RACCOON}"
)

RED = (255, 0, 0)


# --------------------------------------------------------------------------- fixtures


def _save(im: Image.Image, path: Path, **params: object) -> Path:
    im.save(path, **params)
    return path


def _is_close(pixel: tuple[int, ...], expected: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected, strict=True))


def _decode_bytes(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.fixture
def noisy_jpeg(tmp_path: Path) -> Path:
    """A real libjpeg-encoded photo-like JPEG (noise compresses badly, so it is big)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    return _save(Image.fromarray(pixels), tmp_path / "noise.jpg", quality=90)


def _png_with_size(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 PNG whose IHDR claims ``width`` x ``height`` (CRC recomputed)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 0).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # PNG signature (8) + IHDR length (4) + b"IHDR" (4), then width and height.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def rotated_jpeg(tmp_path: Path) -> Path:
    """Stored 40x20 (w x h), EXIF orientation 6: the user sees it 20 wide, 40 tall.

    A red 8x8 block sits at the stored top-left; rotated 90 degrees clockwise for display,
    it ends up at the displayed top-right.
    """
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste(RED, (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(im, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)


# --------------------------------------------------------------------------- errors


def test_image_error_names_file_and_reason_and_pickles() -> None:
    error = ImageError("dir/a.jpg", "file is empty (0 bytes)")
    assert str(error) == f"{Path('dir/a.jpg')}: file is empty (0 bytes)"
    assert isinstance(error, ValueError)
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.path, clone.reason, str(clone)) == (error.path, error.reason, str(error))


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match="not found") as info:
        probe_image(missing)
    assert info.value.path == missing
    assert str(info.value) == f"{missing}: {info.value.reason}"


@pytest.mark.parametrize("function", [probe_image, load_rgb, display_bytes, thumbnail])
def test_zero_byte_file(tmp_path: Path, function) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as info:
        function(empty)
    assert str(info.value).startswith(str(empty))


def test_text_file_named_jpg(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are my notes, not a photo\n" * 10)
    with pytest.raises(ImageError, match="not an image") as info:
        load_rgb(fake)
    assert info.value.path == fake


def test_truncated_jpeg_is_reported(noisy_jpeg: Path, tmp_path: Path) -> None:
    data = noisy_jpeg.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    # The header is intact, so a header-only probe cannot see the damage...
    assert probe_image(cut, verify=False).width == 320
    # ...but a verifying probe and every decode do.
    for function in (probe_image, load_rgb, thumbnail):
        with pytest.raises(ImageError, match="truncated") as info:
            function(cut)
        assert info.value.path == cut
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_is_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    full = _save(
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "f.png"
    )
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:-3000])
    with pytest.raises(ImageError, match="truncated"):
        probe_image(cut)


# --------------------------------------------------------------------------- bomb guard


@pytest.mark.parametrize("function", [probe_image, load_rgb, display_bytes, thumbnail])
def test_decompression_bomb_fails_fast_from_the_header(tmp_path: Path, function) -> None:
    bomb = _png_with_size(tmp_path / "bomb.png", 50_000, 50_000)
    assert bomb.stat().st_size < 100
    pil_limit = Image.MAX_IMAGE_PIXELS
    start = time.perf_counter()
    with pytest.raises(ImageError, match="megapixels") as info:
        function(bomb)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "50000x50000 = 2500.0 megapixels" in message
    assert "limit of 200.0 megapixels" in message
    assert "annowidget.store.images.MAX_PIXELS" in message
    assert "max_pixels=" in message
    assert pil_limit == Image.MAX_IMAGE_PIXELS  # PIL's global is never touched


def test_pixel_limit_is_ours_not_pils(tmp_path: Path) -> None:
    # 180 MP: over PIL's own hard limit (2 x 89.5 MP) but under ours (200 MP).
    big = _png_with_size(tmp_path / "big.png", 15_000, 12_000)
    info = probe_image(big, verify=False)
    assert (info.width, info.height) == (15_000, 12_000)
    # An explicit limit wins, both ways.
    with pytest.raises(ImageError, match=re.escape("limit of 100.0 megapixels")):
        probe_image(big, verify=False, max_pixels=100_000_000)
    bomb = _png_with_size(tmp_path / "bomb.png", 50_000, 50_000)
    assert probe_image(bomb, verify=False, max_pixels=3_000_000_000).width == 50_000


def test_module_max_pixels_is_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _save(Image.new("RGB", (20, 20)), tmp_path / "small.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match="20x20"):
        load_rgb(small)
    monkeypatch.setattr(images, "MAX_PIXELS", 400)
    assert load_rgb(small).size == (20, 20)


# --------------------------------------------------------------------------- modes


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (32, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    info = probe_image(path)
    assert (info.format, info.mode, info.width, info.height) == ("JPEG", "CMYK", 32, 16)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert _is_close(rgb.getpixel((16, 8)), RED)
    shown = display_bytes(path)
    assert not shown.original
    assert shown.mime == "image/jpeg"
    decoded = _decode_bytes(shown.data)
    assert decoded.mode == "RGB"
    assert _is_close(decoded.getpixel((16, 8)), RED)


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    values = np.tile(ramp, (4, 1))
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    info = probe_image(path)
    assert info.mode.startswith("I")
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (4, 256, 3)
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(rgb[0, :, 0], expected)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # gray stays gray
    assert (rgb[0, 0, 0], rgb[0, -1, 0]) == (0, 255)
    # Clipping would have made everything above 255 white; scaling keeps the ramp.
    assert 126 <= rgb[0, 128, 0] <= 129
    # Browsers show 16-bit PNGs correctly, so the file is sent as is.
    shown = display_bytes(path)
    assert shown.original
    assert shown.data == path.read_bytes()


def test_rgba_png_is_composited_over_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (30, 10), (0, 0, 0, 0))  # fully transparent black
    im.paste((255, 0, 0, 255), (0, 0, 10, 10))  # opaque red
    im.paste((0, 0, 255, 128), (10, 0, 20, 10))  # half-transparent blue
    path = _save(im, tmp_path / "alpha.png")
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((5, 5)) == RED
    assert _is_close(rgb.getpixel((15, 5)), (127, 127, 255), tol=2)
    assert rgb.getpixel((25, 5)) == (255, 255, 255)  # not black
    thumb = _decode_bytes(thumbnail(path, size=16))
    assert _is_close(thumb.getpixel((thumb.width - 1, thumb.height // 2)), (255, 255, 255))


def test_rgba_downscaled_for_display_stays_png_with_alpha(tmp_path: Path) -> None:
    im = Image.new("RGBA", (300, 100), (0, 255, 0, 0))
    path = _save(im, tmp_path / "wide.png")
    shown = display_bytes(path, max_side=150)
    assert (shown.mime, shown.original, shown.width, shown.height) == ("image/png", False, 150, 50)
    assert shown.scale == pytest.approx(0.5)
    decoded = _decode_bytes(shown.data)
    assert decoded.mode == "RGBA"
    assert decoded.size == (150, 50)
    assert decoded.getpixel((75, 25))[3] == 0


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (20, 10), 0)
    im.putpalette([0, 0, 0, 0, 200, 0] + [0] * (254 * 3))
    im.paste(1, (10, 0, 20, 10))
    path = _save(im, tmp_path / "palette.png", transparency=0)
    assert probe_image(path).mode == "P"
    rgb = load_rgb(path)
    assert rgb.getpixel((5, 5)) == (255, 255, 255)  # transparent index -> white, not black
    assert rgb.getpixel((15, 5)) == (0, 200, 0)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("LA", (77, 255), (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
    ],
)
def test_other_modes_become_rgb(tmp_path: Path, mode: str, value, expected) -> None:
    path = _save(Image.new(mode, (8, 8), value), tmp_path / f"{mode}.png")
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((4, 4)) == expected


def test_wide_gray_modes_scale_like_16_bit() -> None:
    as_int = np.array([[0, 257, 65535, 70000]], dtype=np.int32)
    np.testing.assert_array_equal(images._wide_to_uint8(as_int, "I"), [[0, 1, 255, 255]])
    eight_bit_in_int = np.array([[0, 100, 255]], dtype=np.int32)
    np.testing.assert_array_equal(images._wide_to_uint8(eight_bit_in_int, "I"), [[0, 100, 255]])
    unit_float = np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(images._wide_to_uint8(unit_float, "F"), [[0, 128, 255, 0]])


# --------------------------------------------------------------------------- EXIF orientation


def test_exif_orientation_6_in_probe_and_load(rotated_jpeg: Path) -> None:
    info = probe_image(rotated_jpeg)
    assert (info.width, info.height, info.orientation) == (20, 40, 6)
    assert info.checksum == hashlib.sha1(rotated_jpeg.read_bytes()).hexdigest()
    assert info.size_bytes == rotated_jpeg.stat().st_size
    assert probe_image(rotated_jpeg, verify=False) == info

    rgb = load_rgb(rotated_jpeg)
    assert rgb.size == (20, 40)
    # Stored top-left red block -> displayed top-right; the rest is blue.
    assert _is_close(rgb.getpixel((16, 3)), RED)
    assert _is_close(rgb.getpixel((3, 3)), (0, 0, 255))
    assert _is_close(rgb.getpixel((16, 36)), (0, 0, 255))

    tensor = decode_for_model(rotated_jpeg)
    assert tensor.dtype.is_floating_point is False
    assert str(tensor.dtype) == "torch.uint8"
    assert tuple(tensor.shape) == (3, 40, 20)
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), np.asarray(rgb))


def test_small_rotated_jpeg_is_sent_as_is_with_oriented_size(rotated_jpeg: Path) -> None:
    shown = display_bytes(rotated_jpeg)
    assert shown == DisplayImage(rotated_jpeg.read_bytes(), "image/jpeg", 20, 40, 1.0, True)


def test_rotated_jpeg_downscaled_has_orientation_baked_in(tmp_path: Path) -> None:
    im = Image.new("RGB", (500, 300), (0, 0, 255))
    im.paste(RED, (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(im, tmp_path / "rot_big.jpg", exif=exif.tobytes(), quality=95)
    shown = display_bytes(path, max_side=100)
    assert (shown.width, shown.height, shown.original) == (60, 100, False)
    assert shown.scale == 60 / 300
    decoded = _decode_bytes(shown.data)
    assert decoded.size == (60, 100)
    assert decoded.getexif().get(0x0112, 1) == 1  # no orientation left to apply twice
    # The red block is at displayed (200..300, 0..100) in original pixels; centre x scale.
    assert _is_close(decoded.getpixel((round(250 * shown.scale), round(50 * shown.scale))), RED)
    assert _is_close(decoded.getpixel((10, 50)), (0, 0, 255))
    thumb = _decode_bytes(thumbnail(path, size=50))
    assert thumb.size == (30, 50)
    assert _is_close(thumb.getpixel((25, 5)), RED)
    assert _is_close(thumb.getpixel((5, 45)), (0, 0, 255))


# --------------------------------------------------------------------------- display


@needs_raccoon
def test_display_returns_original_bytes_for_small_jpeg() -> None:
    path = RACCOON / "images" / "raccoon-1.jpg"
    shown = display_bytes(path)
    assert shown.data == path.read_bytes()
    assert (shown.mime, shown.scale, shown.original) == ("image/jpeg", 1.0, True)
    assert (shown.width, shown.height) == (650, 417)


def test_display_downscales_a_large_image_with_exact_scale(tmp_path: Path) -> None:
    im = Image.new("RGB", (5000, 3000), (40, 40, 40))
    im.paste(RED, (2500, 1500, 2600, 1600))
    path = _save(im, tmp_path / "large.jpg", quality=90)
    shown = display_bytes(path, max_side=4096)
    assert not shown.original
    assert shown.mime == "image/jpeg"
    assert (shown.width, shown.height) == (4096, round(3000 * 4096 / 5000))
    assert shown.scale == 4096 / 5000
    decoded = _decode_bytes(shown.data)
    assert decoded.size == (shown.width, shown.height)
    # Map the red square's centre (2550, 1550) into displayed pixels and back.
    x, y = round(2550 * shown.scale), round(1550 * shown.scale)
    assert _is_close(decoded.getpixel((x, y)), RED)
    assert _is_close(decoded.getpixel((round(2400 * shown.scale), y)), (40, 40, 40))
    assert x / shown.scale == pytest.approx(2550, abs=1)
    # A large enough limit sends the same file untouched.
    assert display_bytes(path, max_side=5000).data == path.read_bytes()


@pytest.mark.parametrize(
    ("suffix", "pil_format", "mime"),
    [
        (".png", "PNG", "image/png"),
        (".gif", "GIF", "image/gif"),
        (".webp", "WEBP", "image/webp"),
        (".bmp", "BMP", "image/bmp"),
        (".jpg", "MPO", "image/jpeg"),  # multi-picture JPEG, as phone cameras write
    ],
)
def test_display_sends_browser_formats_as_is(
    tmp_path: Path, suffix: str, pil_format: str, mime: str
) -> None:
    im = Image.new("RGB", (40, 30), (10, 200, 10))
    # One frame reads back as plain JPEG; MPO needs a second picture.
    extra = {"save_all": True, "append_images": [im]} if pil_format == "MPO" else {}
    path = _save(im, tmp_path / f"a{suffix}", format=pil_format, **extra)
    assert probe_image(path).format == pil_format
    shown = display_bytes(path)
    assert shown == DisplayImage(path.read_bytes(), mime, 40, 30, 1.0, True)
    assert _is_close(load_rgb(path).getpixel((20, 15)), (10, 200, 10))


def test_display_converts_formats_browsers_cannot_show(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (40, 30), (10, 200, 10)), tmp_path / "scan.tif")
    shown = display_bytes(path)
    assert (shown.mime, shown.original, shown.scale) == ("image/jpeg", False, 1.0)
    decoded = _decode_bytes(shown.data)
    assert decoded.size == (40, 30)
    assert _is_close(decoded.getpixel((20, 15)), (10, 200, 10))


def test_display_rejects_bad_max_side(noisy_jpeg: Path) -> None:
    with pytest.raises(ValueError, match="max_side"):
        display_bytes(noisy_jpeg, max_side=0)


# --------------------------------------------------------------------------- thumbnails


def test_thumbnail_is_cached_by_content(noisy_jpeg: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = thumbnail(noisy_jpeg, size=64, cache_dir=cache)
    thumb = _decode_bytes(first)
    assert thumb.format == "JPEG"
    assert thumb.size == (64, 48)
    sha1 = hashlib.sha1(noisy_jpeg.read_bytes()).hexdigest()
    cached = cache / "thumbs" / f"{sha1}_64.jpg"
    assert cached.read_bytes() == first
    assert [p.name for p in (cache / "thumbs").iterdir()] == [cached.name]  # no temp left

    # Prove the second call reads the cache instead of decoding: plant different bytes.
    marker = io.BytesIO()
    Image.new("RGB", (2, 2), RED).save(marker, format="JPEG")
    cached.write_bytes(marker.getvalue())
    os.utime(cached, ns=(1_000_000_000, 1_000_000_000))
    assert thumbnail(noisy_jpeg, size=64, cache_dir=cache) == marker.getvalue()
    assert cached.stat().st_mtime_ns == 1_000_000_000  # not rewritten

    # Another size is another entry; no cache_dir means no files.
    assert _decode_bytes(thumbnail(noisy_jpeg, size=32, cache_dir=cache)).size == (32, 24)
    assert (cache / "thumbs" / f"{sha1}_32.jpg").is_file()
    assert thumbnail(noisy_jpeg, size=64) == first


def test_thumbnail_rejects_bad_size(noisy_jpeg: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        thumbnail(noisy_jpeg, size=0)


# --------------------------------------------------------------------------- real data


@needs_raccoon
def test_probe_all_raccoon_images_match_voc_sizes() -> None:
    checked = 0
    for xml_path in sorted((RACCOON / "annotations").glob("*.xml")):
        root = ET.parse(xml_path).getroot()
        image_path = RACCOON / "images" / root.findtext("filename", "")
        size = root.find("size")
        assert size is not None, xml_path
        info = probe_image(image_path)
        expected = (int(size.findtext("width", "")), int(size.findtext("height", "")))
        assert (info.width, info.height) == expected, image_path
        assert info.format == "JPEG"
        checked += 1
    assert checked == 200
