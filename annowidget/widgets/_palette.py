"""Class colors shared by the Python-drawn widgets (the Gallery and the panels' legends)."""

from __future__ import annotations

# Tableau 10: distinct on both light and dark themes, and colour-blind friendlier than RGB.
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

STATUS_COLORS: dict[str, str] = {
    "unlabeled": "#9e9e9e",
    "predicted": "#f28e2b",
    "reviewed": "#59a14f",
}


def category_color(category_id: int) -> str:
    """The colour of a category, stable across sessions (chosen by id).

    Example:
        >>> category_color(1)
        '#4e79a7'
    """
    return PALETTE[(int(category_id) - 1) % len(PALETTE)]
