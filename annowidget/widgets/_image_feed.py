"""Sends images to the Annotator's front end: encoded file bytes in a binary buffer.

Each image travels once as the bytes of its file (``display_bytes``: the original file when
the browser can show it, a downscaled copy only when it is huge), never base64 and never
decoded pixels. The feed remembers the few images the front end holds, so going back and
forth costs nothing, and the next image is sent ahead while the user works on this one.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annowidget.store import Image
from annowidget.store.images import display_bytes

__all__ = ["ImageFeed", "SentImage"]

# The front end caches 4 decoded images; believing it holds one fewer keeps us on the safe
# side of its eviction (a missing image would show "loading…" until asked for again).
_REMEMBERED = 3

Send = Callable[[dict[str, Any], list[bytes]], None]


@dataclass(frozen=True)
class SentImage:
    """What was sent for one image: its display scale and how many bytes.

    ``changed``: the file's bytes are not those the project recorded (same size, other
    content), so its boxes deserve a look.
    """

    image_id: int
    scale: float
    nbytes: int
    mime: str
    changed: bool = False


class ImageFeed:
    """Sends each image at most once while the front end still holds it.

    Example:
        >>> sent = []
        >>> feed = ImageFeed(lambda msg, buffers: sent.append(msg["image_id"]))
        >>> feed.forget()  # a view is listening
        >>> # feed.ensure(7, Path("a.jpg")); feed.ensure(7, Path("a.jpg")) -> sent == [7]
    """

    def __init__(self, send: Send, *, max_side: int = 4096) -> None:
        self._send = send
        self.max_side = max_side
        self._sent: OrderedDict[int, SentImage] = OrderedDict()
        self.bytes_sent = 0  # image bytes only (benchmarks compare it with file sizes)
        # nothing is sent before a view says it is listening: it would be lost, then resent
        self.active = False

    def forget(self) -> None:
        """A new front end appeared (or reloaded): it holds nothing yet; start sending."""
        self._sent.clear()
        self.active = True

    def get(self, image_id: int) -> SentImage | None:
        return self._sent.get(image_id)

    def ensure(
        self, image_id: int, path: Path, *, recorded: Image | None = None
    ) -> SentImage | None:
        """Send ``image_id`` unless the front end already has it; raises ``ImageError``.

        With ``recorded`` (the image's record), a file whose size is not the recorded one
        (resized since it was added) is not sent: ``ImageError`` says so, naming it.
        Returns None while no front end listens (nothing is sent then).
        """
        if not self.active:
            return None
        known = self._sent.get(image_id)
        if known is not None:
            self._sent.move_to_end(image_id)
            return known
        size = None if recorded is None else (recorded.width, recorded.height)
        shown = display_bytes(path, max_side=self.max_side, recorded_size=size)
        changed = False
        if recorded is not None and recorded.checksum and shown.original:
            # The file's own bytes are at hand: their checksum costs little.
            changed = hashlib.sha1(shown.data).hexdigest() != recorded.checksum
        message = {
            "type": "image",
            "image_id": image_id,
            "mime": shown.mime,
            "width": shown.width,
            "height": shown.height,
            "scale": shown.scale,
        }
        self._send(message, [shown.data])
        self.bytes_sent += len(shown.data)
        sent = SentImage(image_id, shown.scale, len(shown.data), shown.mime, changed)
        self._sent[image_id] = sent
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        return sent
