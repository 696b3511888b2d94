"""A plotly ``FigureWidget`` that a newly attached view renders in full.

plotly syncs a figure's traces and layout to the browser as two traits
(``_widget_data``, ``_widget_layout``) set once, at construction; every later change
travels as a message (restyle, relayout, add traces) that only the views open at that
moment apply. A view attaching later (browser reload, the notebook opened a second time,
Notebook 7 next to JupyterLab) asks the kernel for the widget's state and got the
construction-time snapshot: no traces, no axes titles. :class:`LiveFigure` answers
that request with the figure as it is now.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import plotly.graph_objects as go

__all__ = ["LiveFigure"]


class LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` whose full state (what a new view gets) is its current figure.

    Example:
        >>> figure = LiveFigure()
        >>> _ = figure.add_scatter(x=[1, 2], y=[3, 4], name="loss")
        >>> [trace["name"] for trace in figure.get_state()["_widget_data"]]
        ['loss']
    """

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        # a full state request (a view attaching), once plotly's own __init__ is done
        if key is None and hasattr(self, "_layout_obj"):
            # Written without notification on purpose: the views already open hold the
            # figure (they applied every message), re-sending it whole would redraw them.
            self._trait_values["_widget_data"] = deepcopy(self._data)
            self._trait_values["_widget_layout"] = deepcopy(self._layout_obj._props)
        return super().get_state(key=key, drop_defaults=drop_defaults)
