"""Safe image loading: every image file the project touches goes through here.

What "safe" means:

- Sizes are checked from the header, before any pixel is decoded, against ``MAX_PIXELS``
  (decompression bombs fail fast with a message that says how to raise the limit). The
  check is ours: PIL's global ``Image.MAX_IMAGE_PIXELS`` is neither relied on nor changed.
- Broken files (missing, empty, not an image, truncated, corrupt) raise :class:`ImageError`
  naming the file. PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone (False), so a
  truncated file is reported instead of silently padded with grey.
- The EXIF orientation is applied everywhere, so widths, heights and pixel coordinates are
  always those of the image as the user sees it.
- Every pixel mode (L, LA, P, PA, RGBA, CMYK, 16-bit, 32-bit int, float) becomes 8-bit RGB
  the same way for the model, the thumbnails and the browser.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageFile

from annowidget._io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

__all__ = [
    "BROWSER_MIME_TYPES",
    "MAX_PIXELS",
    "DisplayImage",
    "ImageError",
    "ImageInfo",
    "check_recorded_size",
    "decode_for_model",
    "display_bytes",
    "load_rgb",
    "probe_image",
    "thumbnail",
]

MAX_PIXELS: int = 200_000_000
"""Largest image (width x height) any function here will open; read at call time."""

BROWSER_MIME_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # phone cameras write multi-picture JPEGs; browsers show frame 1
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
"""PIL format name -> MIME type, for the formats every browser decodes."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# Same table as PIL.ImageOps.exif_transpose; applied by hand so a malformed EXIF block
# cannot make an otherwise readable image fail (see _orientation).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PIL_IDENTIFY_ERRORS = (SyntaxError, IndexError, TypeError, struct.error)
_PIL_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image file that cannot be used, with the file and the reason.

    Example:
        >>> str(ImageError("a/b.jpg", "file is empty (0 bytes)"))
        'a/b.jpg: file is empty (0 bytes)'
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[ImageError], tuple[Path, str]]:
        # Keeps the error intact when it crosses a DataLoader worker process.
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`probe_image` learns about a file; sizes are after EXIF orientation."""

    width: int
    height: int
    format: str
    mode: str
    checksum: str
    size_bytes: int
    orientation: int


@dataclass(frozen=True)
class DisplayImage:
    """Encoded bytes for the browser and how they relate to the image the user sees.

    ``width``/``height`` are the pixel size of ``data`` once decoded and oriented;
    ``scale`` is displayed pixels per original (oriented) pixel, 1.0 when ``original``.
    """

    data: bytes
    mime: str
    width: int
    height: int
    scale: float
    original: bool


def check_recorded_size(
    path: str | os.PathLike[str], size: tuple[int, int], recorded: tuple[int, int]
) -> None:
    """Raise ``ImageError`` when a file's ``(width, height)`` is not the one the project
    recorded: the file changed on disk (resized, replaced) since it was added, and
    annotations stored in the recorded frame would land in the wrong place.

    Sizes are after EXIF orientation, as everywhere in the project.

    Example:
        >>> check_recorded_size("a.jpg", (640, 480), (640, 480))
        >>> try:
        ...     check_recorded_size("a.jpg", (320, 240), (640, 480))
        ... except ImageError as error:
        ...     print(error)  # doctest: +ELLIPSIS
        a.jpg: 320x240 pixels on disk but the project recorded 640x480 (the file changed ...
    """
    width, height = size
    if (int(width), int(height)) != (int(recorded[0]), int(recorded[1])):
        raise ImageError(
            path,
            f"{width}x{height} pixels on disk but the project recorded "
            f"{recorded[0]}x{recorded[1]} (the file changed since it was added); "
            "its annotations would be misplaced",
        )


def probe_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = None, verify: bool = True
) -> ImageInfo:
    """Read an image's header (size, format, mode, orientation) and checksum the file.

    The pixel limit is checked from the header, before decoding. With ``verify=True``
    the whole image is also decoded once, so truncated or corrupt files raise here rather
    than in the middle of a training run.

    Example:
        >>> info = probe_image("photo.jpg")  # doctest: +SKIP
        >>> (info.width, info.height, info.orientation)  # doctest: +SKIP
        (3024, 4032, 6)
    """
    file = Path(path)
    data = _read(file)
    im = _open(data, file, max_pixels)
    width, height, fmt, mode = im.width, im.height, im.format or "", im.mode
    if verify:
        if fmt in ("JPEG", "MPO"):
            # Decoding at 1/8 scale still reads every entropy-coded byte, so truncation is
            # still caught, at a fraction of the cost.
            im.draft(None, (max(1, width // 8), max(1, height // 8)))
        _decode(im, file)
    orientation = _orientation(im, file, header_only=not verify)
    if orientation >= 5:
        width, height = height, width
    return ImageInfo(
        width=width,
        height=height,
        format=fmt,
        mode=mode,
        checksum=hashlib.sha1(data).hexdigest(),
        size_bytes=len(data),
        orientation=orientation,
    )


def load_rgb(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image.Image:
    """Decode an image as 8-bit RGB, EXIF orientation applied.

    Transparent pixels are composited over white; 16-bit data is scaled to 8 bits
    (0..65535 -> 0..255), never clipped; CMYK is converted with PIL's formula.

    Example:
        >>> load_rgb("photo.jpg").mode  # doctest: +SKIP
        'RGB'
    """
    file = Path(path)
    im = _open(_read(file), file, max_pixels)
    _decode(im, file)
    orientation = _orientation(im, file)
    return _apply_orientation(_to_rgb(im, file), orientation)


def display_bytes(
    path: str | os.PathLike[str],
    *,
    max_side: int = 4096,
    max_pixels: int | None = None,
    recorded_size: tuple[int, int] | None = None,
) -> DisplayImage:
    """Bytes to send to the browser: the original file when it can be shown as is.

    The original bytes are returned untouched (``original=True``, ``scale=1.0``) when the
    format is one browsers decode (JPEG, PNG, GIF, WEBP, BMP), both oriented sides are
    ``<= max_side`` and the pixel mode displays correctly. A JPEG's EXIF orientation is
    left for the browser to apply (browsers do by default). Otherwise a converted copy is
    returned, orientation baked in, longest side ``<= max_side``: PNG when the image has
    transparency, JPEG quality 90 when not.

    With ``recorded_size`` (the project's ``(width, height)``), a file of another size
    raises ``ImageError`` (see :func:`check_recorded_size`).

    Coordinates: ``scale = width / original oriented width``. A point ``(x, y)`` on the
    displayed image is ``(x / scale, y / scale)`` on the original image; the height may
    differ from ``scale * original height`` by under half a displayed pixel (rounding).

    Example:
        >>> shown = display_bytes("huge.tif", max_side=2048)  # doctest: +SKIP
        >>> (shown.mime, shown.original, max(shown.width, shown.height))  # doctest: +SKIP
        ('image/jpeg', False, 2048)
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    file = Path(path)
    data = _read(file)
    im = _open(data, file, max_pixels)
    orientation = _orientation(im, file)
    width, height = _oriented_size(im.size, orientation)
    if recorded_size is not None:  # from the header: a changed file is never decoded
        check_recorded_size(file, (width, height), recorded_size)
    fmt = im.format or ""
    mime = BROWSER_MIME_TYPES.get(fmt)
    fits = max(width, height) <= max_side
    # Browsers apply EXIF orientation reliably for JPEG only; other formats get it baked in.
    oriented_ok = orientation == 1 or fmt in ("JPEG", "MPO")
    if mime and fits and oriented_ok and _browser_shows_mode(fmt, im.mode):
        return DisplayImage(data, mime, width, height, 1.0, True)

    if fits:
        new_size = (width, height)
    else:
        factor = max_side / max(width, height)
        new_size = (
            max_side if width >= height else max(1, round(width * factor)),
            max_side if height > width else max(1, round(height * factor)),
        )
        raw_target = new_size if orientation < 5 else (new_size[1], new_size[0])
        im.draft(None, raw_target)  # JPEG only: decode directly at a reduced scale
    has_alpha = _has_alpha(im)
    _decode(im, file)
    pixels = _to_rgba(im) if has_alpha else _to_rgb(im, file)
    pixels = _apply_orientation(pixels, orientation)
    if pixels.size != new_size:
        pixels = pixels.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    if has_alpha:
        pixels.save(out, format="PNG")
        mime = "image/png"
    else:
        pixels.save(out, format="JPEG", quality=90)
        mime = "image/jpeg"
    return DisplayImage(out.getvalue(), mime, new_size[0], new_size[1], new_size[0] / width, False)


def thumbnail(
    path: str | os.PathLike[str],
    *,
    size: int = 256,
    cache_dir: str | os.PathLike[str] | None = None,
    max_pixels: int | None = None,
) -> bytes:
    """JPEG bytes of a thumbnail, longest side ``<= size``, EXIF orientation applied.

    With ``cache_dir``, thumbnails are kept as ``cache_dir/thumbs/<sha1 of file>_<size>.jpg``
    and a cached one is returned without decoding the image again. Keying on the file's
    content (not its name or mtime) means an edited image gets a fresh thumbnail.

    Example:
        >>> jpeg = thumbnail("photo.jpg", size=128, cache_dir=".cache")  # doctest: +SKIP
        >>> jpeg[:2]  # doctest: +SKIP
        b'\\xff\\xd8'
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be >= 1, got {size}")
    file = Path(path)
    data = _read(file)
    cached: Path | None = None
    if cache_dir is not None:
        cached = Path(cache_dir) / "thumbs" / f"{hashlib.sha1(data).hexdigest()}_{size}.jpg"
        try:
            hit = cached.read_bytes()
        except FileNotFoundError:
            hit = b""
        if hit:
            return hit
    im = _open(data, file, max_pixels)
    im.draft(None, (size, size))  # JPEG only: decode at the smallest scale that is enough
    _decode(im, file)
    orientation = _orientation(im, file)
    pixels = _apply_orientation(_to_rgb(im, file), orientation)
    pixels.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    pixels.save(out, format="JPEG", quality=85)
    jpeg = out.getvalue()
    if cached is not None:
        atomic_write_bytes(cached, jpeg)
    return jpeg


def decode_for_model(
    path: str | os.PathLike[str], *, max_pixels: int | None = None
) -> torch.Tensor:
    """Decode an image as a ``uint8`` tensor of shape ``(3, height, width)``, EXIF applied.

    Example:
        >>> decode_for_model("photo.jpg").shape  # doctest: +SKIP
        torch.Size([3, 4032, 3024])
    """
    import torch  # imported here so the store does not pay for torch on import

    array = np.array(load_rgb(path, max_pixels=max_pixels), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------- helpers


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageError(path, "file is empty (0 bytes)")
    return data


def _identify(fp: io.BytesIO, errors: list[str]) -> ImageFile.ImageFile | None:
    """PIL's ``Image.open`` minus its global decompression-bomb check (we do our own).

    PIL's check reads the process-wide ``Image.MAX_IMAGE_PIXELS`` (about 89 MP, error
    above twice that); changing it would affect every other library in the process.
    """
    prefix = fp.read(16)
    tried: set[str] = set()
    for load_plugins in (Image.preinit, Image.init):  # common plugins first, then all
        load_plugins()
        for fmt in [f for f in Image.ID if f not in tried]:
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            accepted = accept(prefix) if accept else True
            if isinstance(accepted, str) or not accepted:
                continue
            fp.seek(0)
            try:
                return factory(fp, "")
            except _PIL_IDENTIFY_ERRORS as exc:
                errors.append(f"{fmt}: {exc}")
    return None


def _open(data: bytes, path: Path, max_pixels: int | None) -> ImageFile.ImageFile:
    errors: list[str] = []
    try:
        im = _identify(io.BytesIO(data), errors)
    except _BOMB_ERRORS as exc:
        raise ImageError(path, f"decompression bomb guard: {exc}") from exc
    except _PIL_DECODE_ERRORS as exc:
        raise ImageError(path, f"unreadable image header ({exc})") from exc
    if im is None:
        detail = f" ({'; '.join(errors)})" if errors else ""
        raise ImageError(path, f"not an image file in a format PIL reads{detail}")
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    width, height = im.size
    if width * height > limit:
        raise ImageError(
            path,
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"limit of {limit / 1e6:.1f} megapixels; raise "
            "annowidget.store.images.MAX_PIXELS or pass max_pixels=...",
        )
    return im


def _decode(im: ImageFile.ImageFile, path: Path) -> None:
    try:
        im.load()
    except _BOMB_ERRORS as exc:
        raise ImageError(path, f"decompression bomb guard: {exc}") from exc
    except _PIL_DECODE_ERRORS as exc:
        # PIL reports cut-off files as "image file is truncated" and broken streams as
        # other OSErrors; both mean the pixels on disk are incomplete.
        raise ImageError(path, f"truncated or corrupt image data: {exc}") from exc


def _orientation(im: ImageFile.ImageFile, path: Path, *, header_only: bool = False) -> int:
    """EXIF orientation 1..8 (1 when absent or malformed).

    A PNG may put its eXIf chunk after the pixel data; PIL then decodes the image to
    find it. ``header_only`` skips that (orientation 1); otherwise the decode goes
    through :func:`_decode` so a broken file is reported, not half-loaded.
    """
    if im.format == "PNG" and "exif" not in im.info:
        if header_only:
            return 1
        _decode(im, path)
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block must not make the pixels unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation >= 5 else size


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (
        im.mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    )


def _browser_shows_mode(fmt: str, mode: str) -> bool:
    if fmt in ("JPEG", "MPO"):
        return mode in ("L", "RGB")  # CMYK/YCCK JPEGs render wrong in some browsers
    if fmt == "BMP":
        return mode in ("1", "L", "P", "RGB", "RGBA")
    return True


def _to_rgba(im: Image.Image) -> Image.Image:
    return im.convert("RGBA")


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    if im.mode in _WIDE_GRAY_MODES:
        gray = Image.fromarray(_wide_to_uint8(np.asarray(im), im.mode), mode="L")
        return gray.convert("RGB")
    if _has_alpha(im):
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im.convert("RGBA")).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageError(path, f"cannot convert pixel mode {im.mode} to RGB ({exc})") from exc


def _wide_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale 16/32-bit or float gray values to 0..255.

    ``I;16*`` is always 16-bit: 0..65535 -> 0..255 (rounded). ``I`` (32-bit int, what
    some decoders give for 16-bit data) and ``F`` are clipped to 0..65535 and scaled the
    same way when they exceed 255, kept as is otherwise; ``F`` within 0..1 is x255.
    """
    if mode.startswith("I;16"):
        # Integer math: exact rounding, and half the memory of a float copy.
        wide = values.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "F" and data.size and data.min() >= 0.0 and data.max() <= 1.0:
        data = data * 255.0
    elif data.size and data.max() > 255.0:
        data = np.clip(data, 0.0, 65535.0) * (255.0 / 65535.0)
    return np.clip(np.rint(data), 0, 255).astype(np.uint8)
