"""annowidget: label images inside Jupyter and fine-tune torchvision models on them."""

from __future__ import annotations

__version__ = "0.1.0"
