"""The explorer widget shared by every interactive figure of the course.

An :class:`Explorer` is an ipywidgets ``VBox``: a title, a row of controls, and an ``ipywidgets.Image`` that
holds the current figure as PNG bytes. Moving a control re-draws the figure from numbers the explorer computed
when it was built (samples, trajectories, metrics of models that the notebook trained or loaded earlier), so
a change renders in a fraction of a second and never trains anything.

Each explorer also draws *static figures*: the same panels for a few fixed control settings, one figure of at
most four panels per setting, captioned with it. A notebook shows both (:meth:`Explorer.show`), so a reader on
the code host (where no kernel runs) still sees the figure, and nbval compares only the explorer's short, fixed
text form.

Figures are drawn with ``matplotlib.figure.Figure`` (no pyplot), so building an explorer never leaves a
figure behind for the inline backend to show a second time.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Draws the panels of one setting on a row of axes; returns the row's caption.
DrawFn = Callable[..., str]

#: Resolution of the live figure (PNG); the static figures are drawn at STATIC_DPI.
LIVE_DPI = 80
STATIC_DPI = 90
PANEL_SIZE = 3.1


def png_bytes(fig: Figure, dpi: int = LIVE_DPI) -> bytes:
    """The figure as PNG bytes (Agg), drawn off-screen."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def new_figure(nrows: int, ncols: int, panel: float = PANEL_SIZE) -> tuple[Figure, np.ndarray]:
    """A pyplot-free figure with an [nrows, ncols] array of axes."""
    height = panel * nrows + 0.45 * nrows
    fig = Figure(figsize=(panel * ncols, height))
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    # fixed margins: constrained layout would double the drawing time of every re-draw
    fig.subplots_adjust(left=0.45 / (panel * ncols), right=1 - 0.25 / (panel * ncols), bottom=0.5 / height,
                        top=1 - 0.45 / height, wspace=0.3, hspace=0.45)
    return fig, axes


def control_class(name: str) -> str:
    """The CSS class that marks the control named ``name`` (the browser test finds controls by it)."""
    return "cmtutor-control-" + "".join(ch if ch.isalnum() else "-" for ch in name)


class Explorer(widgets.VBox):
    """Controls and a live figure; see the module docstring.

    Parameters
    ----------
    name: a short identifier (CSS class ``cmtutor-explorer-<name>``; used by the browser test).
    title: the heading shown above the controls.
    controls: named value widgets; their current values are passed to ``draw`` as keyword arguments.
    ncols: panels per row.
    draw: ``draw(axes, **values) -> caption`` fills a row of ``ncols`` axes for one setting.
    static_settings: the settings drawn by :meth:`static_figure`, one row each.
    """

    def __init__(self, name: str, title: str, controls: Mapping[str, widgets.ValueWidget], ncols: int,
                 draw: DrawFn, static_settings: Sequence[Mapping[str, Any]], help_text: str = "") -> None:
        if not 1 <= ncols <= 4:
            raise ValueError(f"an explorer draws 1 to 4 panels per setting, not {ncols}: more is unreadable")
        self.name = name
        self.title = title
        self.controls = dict(controls)
        self.ncols = ncols
        self._draw = draw
        self.static_settings = [dict(s) for s in static_settings]
        # natural size (no stretching to the cell's width), shrunk only when the cell is narrower
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto",
                                                                      align_self="flex-start"))
        self.image.add_class("cmtutor-explorer-figure")
        for cname, control in self.controls.items():
            control.add_class(control_class(cname))
            control.style.description_width = "initial"
            control.observe(self._on_change, names="value")
        header = widgets.HTML(f"<b>{title}</b>" + (f"<br><small>{help_text}</small>" if help_text else ""))
        row = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([header, row, self.image])
        self.add_class("cmtutor-explorer")
        self.add_class(f"cmtutor-explorer-{name}")
        self.initial = self.values()
        self.renders = 0
        self.refresh()

    # -- state ------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The controls' current values."""
        return {k: c.value for k, c in self.controls.items()}

    def set(self, **values: Any) -> None:
        """Set controls programmatically (each change re-draws, as a moved control does)."""
        for k, v in values.items():
            self.controls[k].value = v

    # -- drawing ----------------------------------------------------------------------------------
    def figure(self, **values: Any) -> Figure:
        """The live figure for ``values`` (missing ones: the controls' current values)."""
        vals = {**self.values(), **values}
        fig, axes = new_figure(1, self.ncols)
        caption = self._draw(list(axes[0]), **vals)
        if caption:
            fig.suptitle(caption, fontsize=10)
        return fig

    def refresh(self) -> None:
        """Re-draw the live figure from the controls' values."""
        self.image.value = png_bytes(self.figure())
        self.renders += 1

    def _on_change(self, change: dict[str, Any]) -> None:
        self.refresh()

    def static_figures(self) -> list[Figure]:
        """One figure per static setting, its caption as the title: a row of at most ``ncols`` (≤ 4) panels that a
        reader without a kernel can read at the page's width (a grid of every setting made 7-point text)."""
        return [self.figure(**{**self.initial, **setting}) for setting in self.static_settings]

    def show(self) -> None:
        """Display the live explorer and, under it, its static figures (what a notebook cell does).

        The static figures are shown as PNG images (``IPython.display.Image``), whatever the matplotlib
        backend, so their text form (what nbval compares) is fixed too."""
        from IPython.display import Image, display

        display(self, *(Image(data=png_bytes(fig, dpi=STATIC_DPI), format="png") for fig in self.static_figures()))

    def __repr__(self) -> str:
        return f"<{self.title}: interactive explorer; its controls work with a running kernel>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The text form is what nbval compares: fixed, unlike the widget view's model id (which nbval skips).
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle


# -- shared helpers -----------------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def single_threaded(fn: F) -> F:
    """Run ``fn`` with torch on one CPU thread (the previous setting is restored afterwards).

    An explorer computes its numbers with thousands of tiny tensor operations (2D points, small MLPs). A
    second thread barely helps there, and on a busy machine synchronising it costs far more than it saves:
    measured with 2 threads on a loaded 2-core machine, building the discretisation explorer took 7 to 38
    CPU-s instead of 1.3 with one thread.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper  # type: ignore[return-value]



def as_sampler(source: Any) -> Any:
    """A :class:`cmtutor.sampler.Sampler` from a ``Run`` (its EMA weights) or a ``Sampler`` itself."""
    if hasattr(source, "sample_standardized"):
        return source
    if hasattr(source, "sampler"):
        return source.sampler()
    raise TypeError(f"expected a cmtutor Run or Sampler, got {type(source).__name__}")


def reference_data(sources: Sequence[Any], data: Any | None, standardizer: Any, n: int, seed: int) -> np.ndarray:
    """n held-out data points in model (standardised) coordinates.

    ``data`` (raw units, an array ``[N, D]``) wins; otherwise the held-out split of the first ``Run``.
    """
    if data is None:
        run = next((s for s in sources if hasattr(s, "data")), None)
        if run is None:
            raise ValueError("pass data= (raw data points) when no cmtutor Run is given")
        data = run.data.heldout
    x = torch.as_tensor(np.asarray(data, dtype=np.float32))
    x = standardizer.encode(x).numpy()
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[idx]


def style(ax: Axes, title: str, xlabel: str = "", ylabel: str = "", legend: bool = True, grid: bool = True) -> None:
    """The explorers' look for a chart panel: small labels, a light grid, a legend."""
    ax.set_title(title, fontsize=9)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    if grid:
        ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)


def fmt(v: float) -> str:
    """A compact, rounded number for figure labels."""
    return f"{v:.3g}"


def selection(name: str, values: Sequence[Any], value: Any | None = None, labels: Sequence[str] | None = None
              ) -> widgets.SelectionSlider:
    """A slider over a fixed list of values (labelled compactly), non-continuous so dragging renders once."""
    labels = list(labels) if labels is not None else [fmt(v) if isinstance(v, float) else str(v) for v in values]
    options = list(zip(labels, values))
    return widgets.SelectionSlider(options=options, value=values[0] if value is None else value,
                                   description=name, continuous_update=False)


def dropdown(name: str, values: Sequence[Any], value: Any | None = None) -> widgets.Dropdown:
    return widgets.Dropdown(options=list(values), value=values[0] if value is None else value, description=name)
