"""House style for the book's figures; functions return figures and never call `plt.show()`."""

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# One colour per series kind, reused across chapters so that a reader learns them once.
COLORS = {
    "base": "#444444",
    "positive": "#1b7837",
    "negative": "#b2182b",
    "forward": "#2166ac",
    "inverse": "#d6604d",
    "theory": "#000000",
}
SEQUENTIAL = plt.get_cmap("viridis")
_INLINE_READY = False

_STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "legend.frameon": False,
}


def _show_inline() -> None:
    """In a Jupyter kernel, register the inline PNG display of figures (pyplot does it only for its own)."""
    global _INLINE_READY
    if _INLINE_READY:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")
        _INLINE_READY = True


def new_figure(
    ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 3.6, **kwargs
) -> tuple[Figure, object]:
    """A figure in the house style with `nrows x ncols` axes (`plt.subplots` semantics for the axes).

    The figure is not registered with pyplot, so Jupyter shows it exactly once: as a cell's value or through
    `display(fig)`, never again by the inline backend at the end of the cell (a figure shown twice gives the
    book a duplicate figure label). The style goes to the global rcParams because artists read them when
    they are drawn.
    """
    _show_inline()
    plt.rcParams.update(_STYLE)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def series_colors(n: int) -> list:
    """`n` colours from the sequential map, for curves ordered by a size (data, parameters, tokens)."""
    return [SEQUENTIAL(0.15 + 0.7 * i / max(n - 1, 1)) for i in range(n)]
