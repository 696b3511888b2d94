"""What an import did: counts, and the items it skipped, clipped or corrected, by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class ImportReport:
    """The outcome of one import; a bad item is listed here instead of aborting the import.

    ``skipped`` and ``clipped`` hold ``(item, reason)`` pairs where ``item`` names the file,
    line or JSON field (``"annotations[3]"``, ``"labels/a.txt:7"``). ``warnings`` holds
    things that were imported but corrected (an image size that disagreed with the file).

    Each list keeps the first ``EXAMPLES`` entries; ``skipped_count``, ``clipped_count``
    and ``warnings_count`` count them all. A file of a million bad items would otherwise
    cost more memory as a report than as data (a tuple and two strings per item).

    Example:
        >>> report = ImportReport(images_added=2)
        >>> report.skip("b.jpg", "file is empty (0 bytes)")
        >>> print(report.summary())
        2 images added, 0 already in the project, 0 annotations added, 0 categories added
        1 item skipped:
          b.jpg: file is empty (0 bytes)
    """

    EXAMPLES: ClassVar[int] = 1000

    images_added: int = 0
    images_existing: int = 0
    annotations_added: int = 0
    annotations_existing: int = 0
    categories_added: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    clipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    clipped_count: int = 0
    warnings_count: int = 0

    def skip(self, item: str, reason: str) -> None:
        """Record that ``item`` was left out, and why."""
        self.skipped_count += 1
        if len(self.skipped) < self.EXAMPLES:
            self.skipped.append((str(item), str(reason)))

    def clip(self, item: str, what: str) -> None:
        """Record that ``item`` was imported after being clipped to its image."""
        self.clipped_count += 1
        if len(self.clipped) < self.EXAMPLES:
            self.clipped.append((str(item), str(what)))

    def warn(self, item: str, what: str) -> None:
        """Record that ``item`` was imported with a correction."""
        self.warnings_count += 1
        if len(self.warnings) < self.EXAMPLES:
            self.warnings.append((str(item), str(what)))

    @property
    def ok(self) -> bool:
        """True when nothing was skipped."""
        return not self.skipped

    def summary(self, *, limit: int = 20) -> str:
        """A few lines for people: the counts, then the first ``limit`` items of each list."""
        lines = [
            f"{self.images_added} images added, {self.images_existing} already in the project, "
            f"{self.annotations_added} annotations added, "
            f"{self.categories_added} categories added"
        ]
        if self.annotations_existing:
            lines.append(f"{self.annotations_existing} annotations were already in the project")
        for title, items, total in (
            ("skipped", self.skipped, self.skipped_count),
            ("clipped to the image", self.clipped, self.clipped_count),
            ("corrected", self.warnings, self.warnings_count),
        ):
            if not total:
                continue
            noun = "item" if total == 1 else "items"
            lines.append(f"{total} {noun} {title}:")
            lines.extend(f"  {item}: {reason}" for item, reason in items[:limit])
            if total > limit:
                lines.append(f"  ... and {total - limit} more")
        return "\n".join(lines)
