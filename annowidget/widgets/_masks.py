"""Masks between the kernel and the Annotator's front end: compact both ways.

Down (kernel -> browser): each mask travels once per page, in a binary buffer, as whichever
is smaller of its COCO RLE text and a 1-bit PNG of its bounding box; never as JSON lists of
pixels. The annotations in the ``_boxes`` trait name their mask by a content key
(``mask_key``), computed the same way in ``js/src/mask.js``, so a mask the page painted
itself is known to be there without being sent back.

Up (browser -> kernel): a painted mask arrives as COCO RLE (``{"size", "counts"}``) inside
its edit command; ``mask_from_front_end`` checks it, decodes it with pycocotools and
re-encodes it, and gives its area and bounding box.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from annowidget.formats import check_segmentation
from annowidget.store import ProjectError

__all__ = ["MaskFeed", "StoredMask", "compressed_rle", "mask_from_front_end", "mask_key"]

# The page keeps 2,000 masks (js/src/mask_store.js); believing it keeps fewer stays on the
# safe side of its eviction (a missing mask is asked for again anyway).
_REMEMBERED = 1500

Send = Callable[[dict[str, Any], list[bytes]], None]


def _fnv1a(text: bytes, seed: int) -> str:
    h = seed
    for byte in text:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def mask_key(size: Iterable[int], counts: str) -> str:
    """The content key of a compressed RLE (two 32-bit FNV-1a hashes, as in js/src/mask.js).

    Example:
        >>> mask_key([7, 9], "5160L2ON12ON12ON12ON500001")
        '090bbc0eb0a410b0'
    """
    height, width = (int(v) for v in size)
    text = f"{height}x{width}:{counts}".encode("ascii")
    return _fnv1a(text, 0x811C9DC5) + _fnv1a(text, 0x01000193)


def compressed_rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    """A stored RLE with ``counts`` as compressed text (uncompressed run lists converted).

    Example:
        >>> compressed_rle({"size": [1, 2], "counts": [1, 1]})["counts"]
        '11'
    """
    counts = segmentation["counts"]
    size = [int(v) for v in segmentation["size"]]
    if isinstance(counts, list):
        counts = mask_utils.frPyObjects({"size": size, "counts": counts}, *size)["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": size, "counts": counts}


@dataclass(frozen=True)
class StoredMask:
    """A mask from the front end, ready for the store: RLE, area and COCO bbox."""

    segmentation: dict[str, Any]
    area: float
    bbox: list[float]


def mask_from_front_end(value: Any, height: int, width: int) -> StoredMask:
    """Check a painted mask (``{"size": [h, w], "counts": str}``) and normalise it.

    Raises ``ProjectError`` naming the field when it is malformed, of another size than the
    image, or empty.

    Example:
        >>> mask_from_front_end({"size": [2, 2], "counts": "22"}, 2, 2).bbox
        [1.0, 0.0, 1.0, 2.0]
    """
    if not isinstance(value, dict):
        raise ProjectError(f"mask must be {{'size': [h, w], 'counts': str}}, got {value!r:.80}")
    problem = check_segmentation(value)
    if problem:
        raise ProjectError(f"mask: {problem}")
    if [int(v) for v in value["size"]] != [height, width]:
        raise ProjectError(f"mask size {value['size']} is not the image's [{height}, {width}]")
    rle = compressed_rle(value)
    pixels = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    area = float(pixels.sum())
    if area == 0:
        raise ProjectError("mask is empty: delete the annotation instead")
    encoded = mask_utils.encode(np.asfortranarray(pixels))
    bbox = [float(v) for v in mask_utils.toBbox(encoded)]
    segmentation = {"size": rle["size"], "counts": encoded["counts"].decode("ascii")}
    return StoredMask(segmentation, area, bbox)


def _png_of_box(rle: dict[str, Any]) -> tuple[bytes, list[int]]:
    """A 1-bit PNG of the mask's bounding box, and that box [x, y, w, h] in pixels."""
    compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    x, y, w, h = (int(v) for v in mask_utils.toBbox(compressed))
    pixels = mask_utils.decode(compressed)[y : y + max(h, 1), x : x + max(w, 1)]
    buffer = io.BytesIO()
    PILImage.fromarray(pixels.astype(bool)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue(), [x, y, pixels.shape[1], pixels.shape[0]]


def wire_form(rle: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """How one mask travels: its header and bytes (RLE text or a PNG of its box, the smaller).

    Example:
        >>> header, data = wire_form({"size": [2, 2], "counts": "22"})
        >>> header["format"], data
        ('rle', b'22')
    """
    text = rle["counts"].encode("ascii")
    header: dict[str, Any] = {"key": mask_key(rle["size"], rle["counts"]), "size": rle["size"]}
    # RLE costs about 1 byte per boundary crossing a column; a PNG ~70 bytes of framing, so
    # only long texts (ragged or striped masks) are worth the PNG encode
    if len(text) > 160:
        png, box = _png_of_box(rle)
        if len(png) < len(text):
            return {**header, "format": "png", "box": box}, png
    return {**header, "format": "rle"}, text


class MaskFeed:
    """Sends each mask to the front end once while it still holds it.

    Example:
        >>> sent = []
        >>> feed = MaskFeed(lambda msg, buffers: sent.append(len(msg["masks"])))
        >>> feed.forget()  # a view is listening
        >>> _ = feed.ensure([{"size": [2, 2], "counts": "22"}] * 2)
        >>> sent  # one mask in one message: the second is the same mask
        [1]
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._held: OrderedDict[str, None] = OrderedDict()
        self._wire: OrderedDict[str, tuple[dict[str, Any], bytes]] = OrderedDict()
        self.bytes_sent = 0  # everything on the wire for masks: JSON headers and buffers
        self.active = False

    def forget(self) -> None:
        """A new front end appeared (or reloaded): it holds no mask yet; start sending."""
        self._held.clear()
        self.active = True

    def hold(self, key: str) -> None:
        """The front end made this mask itself (a brush stroke): no need to send it."""
        self._held[key] = None
        self._held.move_to_end(key)
        self._trim()

    def drop(self, keys: Iterable[str]) -> None:
        """The front end lost these (it asked for them again)."""
        for key in keys:
            self._held.pop(key, None)

    def ensure(self, segmentations: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Send the masks the front end lacks, in one message; the key of every RLE given.

        The message is ``{"type": "masks", "sizes": [[h, w], ...], "masks": [entry, ...]}``
        with one buffer; an entry is ``[key, size index, end]`` for RLE text or
        ``[key, size index, end, x, y, w, h]`` for a PNG of that box, its bytes running
        from the previous entry's end. Short, because small masks are many.
        """
        keys: dict[str, str] = {}
        sizes: list[list[int]] = []
        entries: list[list[Any]] = []
        chunks: list[bytes] = []
        offset = 0
        for segmentation in segmentations:
            rle = compressed_rle(segmentation)
            key = mask_key(rle["size"], rle["counts"])
            keys[rle["counts"]] = key
            if not self.active or key in self._held:
                if key in self._held:
                    self._held.move_to_end(key)
                continue
            header, data = self._encoded(key, rle)
            if rle["size"] not in sizes:
                sizes.append(rle["size"])
            offset += len(data)
            entries.append([key, sizes.index(rle["size"]), offset, *header.get("box", [])])
            chunks.append(data)
            self._held[key] = None
        if entries:
            message = {"type": "masks", "sizes": sizes, "masks": entries}
            self._send(message, [b"".join(chunks)])
            self.bytes_sent += offset + len(json.dumps(message, separators=(",", ":")))
            self._trim()
        return keys

    def _encoded(self, key: str, rle: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        cached = self._wire.get(key)
        if cached is None:
            cached = wire_form(rle)
            self._wire[key] = cached
            while len(self._wire) > 256:
                self._wire.popitem(last=False)
        return cached

    def _trim(self) -> None:
        while len(self._held) > _REMEMBERED:
            self._held.popitem(last=False)
