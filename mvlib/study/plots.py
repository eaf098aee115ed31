"""What every notebook shares to show its results: the site's table display, saving a figure,
a table drawn as a figure, where a legend goes. Each notebook's own figures sit in its study
module, beside the numbers they draw."""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mvlib.core import paths
from mvlib.core.atomic import write_atomic
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.instruments.reliance import training_curve

# Where a legend goes so that it hides nothing: under its axes (below the x label).
BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "fontsize": 8, "frameon": False}


def table_number(x: float) -> str:
    """A number as the notebooks' tables show it: three decimals (three significant digits
    below 0.001, where p-values live), whole numbers as such, missing values as a dash."""
    if x != x:
        return "–"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 1e-3 else f"{x:.3f}"


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(na_rep="–", float_format=table_number, classes="dataframe")


def notebook_display() -> None:
    """How the notebooks show tables: every cell whole (no "..."), every column, numbers by
    `table_number`; values are kept exact, only their display is rounded."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 200)
    pd.set_option("display.float_format", table_number)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the options above are all there is
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, _table_html)


def savefig(fig: plt.Figure, name: str, prof: Profile, close: bool = False) -> None:
    """Write `name`.png into the profile's figures folder (figures/ for `laptop` on the
    synthetic data; elsewhere in the store for other profiles and data sets), atomically.
    `close`: not shown in the notebook (a table's image, whose notebook shows the table)."""
    write_atomic(paths.figures(prof.tag) / f"{name}.png",
                 lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    if close:
        plt.close(fig)


def reliance_panel(ax: plt.Axes, run: RunDir, title: str) -> None:
    """A run's view reliance during training on `ax`: validation AUC of the model, of its CC
    part and of its MLO part per epoch (`reliance.training_curve`), against chance."""
    curve = training_curve(run)
    for name, label, color, style in (("full", "full", "black", "-"),
                                      ("cc_only", "CC only", "tab:blue", "--"),
                                      ("mlo_only", "MLO only", "tab:orange", "--")):
        ax.plot(curve.epoch + 1, curve[name], style, color=color, marker="o", label=label)
    ax.axhline(0.5, color="gray", lw=0.8, label="chance (AUC 0.5)")
    ax.set(xlabel="epoch", ylabel="validation AUC", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _cell(value: object, decimals: int = 3) -> str:
    """One table cell as shown: a float to `decimals` decimals, keeping its trailing zeros
    (0.890, not 0.89), or to as many significant digits when it is nonzero and below
    10^-(decimals - 1) (learning rates, a weight of 3e-4: not 0.000); anything else as is."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real) \
            or isinstance(value, numbers.Integral):
        return str(value)
    v = float(value)
    if v != 0 and abs(v) < 10.0 ** -(decimals - 1):
        return f"{v:.{decimals}g}"
    return f"{v:.{decimals}f}"


def render_table(table: pd.DataFrame, title: str, decimals: int = 3) -> plt.Figure:
    """A table as an image (what notebook 07 writes into figures/ beside the CSV). Strings
    and integers are shown as they are, floats to `decimals` decimals (see `_cell`); a float
    column of whole numbers only (counts or epochs that a missing value made float) as
    integers; missing values as "-"."""
    frame = table.reset_index()
    text = frame.astype(object).where(frame.notna(), "-")
    for col in text.columns:
        floats = [v for v in text[col] if isinstance(v, float | np.floating)]
        whole = bool(floats) and all(float(v).is_integer() for v in floats) \
            and max(abs(float(v)) for v in floats) > 1  # not a 0/1 weight or share
        text[col] = [str(int(v)) if whole and isinstance(v, float | np.floating)
                     else _cell(v, decimals) for v in text[col]]
    fig, ax = plt.subplots(figsize=(min(1.0 + 1.1 * text.shape[1], 16), 0.6 + 0.3 * len(text)))
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    if text.empty:  # e.g. Table 3 on a data set without heatmaps
        ax.text(0.5, 0.5, "no rows for this data set", ha="center", va="center")
        return fig
    t = ax.table(cellText=text.values, colLabels=list(text.columns), loc="center",
                 cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(text.shape[1])))
    fig.tight_layout()
    return fig


