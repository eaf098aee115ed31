"""mvlib.study.plots: the figures' readability fixes and the paper's reference lines, on small
synthetic curves and run folders written in tmp_path (no training)."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D
from matplotlib.text import Text

from mvlib.core import paper
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.study import (
    balancing_methods,
    gradient_blending,
    plots,
    tables,
    training_dynamics,
    uniview_curves,
)


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test's figures closed after it."""
    yield
    plt.close("all")


def _curves(lrs: tuple[float, ...] = (1e-5, 1e-4, 1e-3), epochs: int = 5) -> pd.DataFrame:
    """Uni-view learning curves as notebook 01 builds them: every line ends near 0.9 (train)
    or 0.6 (validation), so that their end labels would pile up."""
    rows = []
    for view, (k, lr), epoch in itertools.product(("CC", "MLO"), enumerate(lrs),
                                                  range(epochs)):
        rows.append({"view": view, "lr": lr, "seed": 0, "epoch": epoch,
                     "train_auc_malignant": 0.5 + 0.4 * (epoch + 1) / epochs + 1e-4 * k,
                     "val_auc_malignant": 0.5 + 0.1 * (epoch + 1) / epochs + 1e-4 * k})
    return pd.DataFrame(rows)


def _horizontal_at(ax, y: float) -> list[Line2D]:
    """The lines of `ax` drawn flat at height `y`."""
    return [ln for ln in ax.get_lines()
            if len(ln.get_ydata()) and np.allclose(np.asarray(ln.get_ydata(), float), y)]


def _run(store, name: str, **cfg) -> RunDir:
    """A finished Joint ResNet run folder to write records into."""
    run = RunDir(RunConfig(model="joint", lr=1e-4, epochs=2, profile="smoke",
                           experiment=name, **cfg), store)
    run.create()
    run.set_status(state="done")
    return run


def _reliance_metrics(run: RunDir, epochs: int = 3) -> None:
    """metrics.csv with the view-reliance columns `reliance.training_curve` reads."""
    run.write_metrics([{"epoch": e, "train_loss": 1.0, "val_loss": 1.0,
                        "val_auc_malignant": 0.7, "val_auc_cc_only": 0.71,
                        "val_auc_mlo_only": 0.55} for e in range(epochs)])


def _lca_windows(run: RunDir, windows: int = 6) -> None:
    """LCA windows whose error is 1e-5, far below the loss changes (about 1e-2)."""
    for epoch in range(2):
        rows = []
        for i in range(windows // 2):
            cc, mlo, shared = -0.004, -0.006, -0.001
            rows.append({"epoch": epoch, "iteration": 4 * i + 3, "cc": cc, "mlo": mlo,
                         "shared": shared, "actual": cc + mlo + shared + 1e-5,
                         "allocated": cc + mlo + shared, "error": 1e-5})
        run.write_dynamics(epoch, "lca", rows)


def test_learning_curves_label_epochs_with_integers():
    fig = uniview_curves.learning_curves(_curves())
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert all(t.get_text().lstrip("−-").isdigit() for t in ax.get_xticklabels()
                   if t.get_text())


def test_learning_curves_draw_the_papers_best_test_auc_per_view():
    fig = uniview_curves.learning_curves(_curves())
    for ax, key in zip(fig.axes, ("uni-view CC", "uni-view MLO"), strict=True):
        auc = paper.TABLE1[key][0]
        lines = _horizontal_at(ax, auc)
        assert [ln.get_label() for ln in lines] == [f"paper: best test AUC {auc:.3f}"]
        assert lines[0].get_linestyle() == "--"
    assert {0.864, 0.789} == set(uniview_curves.UNIVIEW_TEST_AUC.values())


def test_learning_rate_labels_at_the_line_ends_do_not_overlap():
    lrs = tuple(np.geomspace(1e-5, 3e-3, 10))  # the paper's ten rates, ending together
    fig = uniview_curves.learning_curves(_curves(lrs))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # without leaders
        assert len(boxes) == 2 * len(lrs)
        overlapping = [(a, b) for a, b in itertools.combinations(boxes, 2)
                       if a.overlaps(b) and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5]
        assert not overlapping


def test_lca_error_has_its_own_axis_at_its_own_scale(tmp_path):
    run = _run(tmp_path, "lca", lca_every=4, epoch_fraction=0.1)
    _lca_windows(run)
    fig = training_dynamics.lca_error_figure(run, "LCA error")
    loss_ax = next(ax for ax in fig.axes if ax.get_lines()
                   and ax.get_lines()[0].get_label() == "actual change")
    error_ax = next(ax for ax in fig.axes if ax.patches)
    assert error_ax is not loss_ax
    assert error_ax.get_ylabel() and loss_ax.get_ylabel()
    lo, hi = error_ax.get_ylim()
    assert hi - lo < 1e-3  # an error of 1e-5 fills its axis, not a loss-change scale


def test_dynamics_figure_legends_hide_nothing_and_share_has_the_papers_half(tmp_path):
    norms = _run(tmp_path, "norms")
    norms.write_dynamics(0, "grad_norms", [{"epoch": 0, "iteration": i, "cc": 1.0,
                                            "mlo": 2.0, "shared": 0.1} for i in range(8)])
    _reliance_metrics(norms)
    lca = _run(tmp_path, "lca", lca_every=4, epoch_fraction=0.1)
    _lca_windows(lca)
    fig = training_dynamics.dynamics_figure(norms, lca, "lr 1e-4")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend is not None
        inside = legend.get_window_extent(renderer).intersection(
            legend.get_window_extent(renderer), ax.get_window_extent(renderer))
        assert inside is None or inside.height < 1  # under the axes, not over the data
    shares = [ax for ax in fig.axes if "share" in ax.get_ylabel()]
    assert len(shares) == 1
    half = _horizontal_at(shares[0], 100 * paper.FIG4_MLO_LCA_SHARE)
    assert len(half) == 1 and half[0].get_label().startswith("paper:")
    share_line = next(ln for ln in shares[0].get_lines() if ln not in half)
    assert np.allclose(share_line.get_ydata(), 100 * 0.006 / 0.011)  # MLO's part of each


def test_blending_loss_axis_names_the_two_cross_entropies_and_draws_chance(tmp_path):
    runs = {}
    for name, model in (("cc", "uni_cc"), ("mlo", "uni_mlo"), ("joint", "joint")):
        run = RunDir(RunConfig(model=model, lr=1e-4, epochs=2, profile="smoke",
                               experiment="blend"), tmp_path)
        run.create()
        run.write_metrics([{"epoch": e, "train_loss": 1.2 - 0.1 * e, "val_loss": 1.3,
                            "train_auc_malignant": 0.6, "val_auc_malignant": 0.55}
                           for e in range(3)])
        runs[name] = run
    fig = gradient_blending.blending_curves_figure(runs)
    loss_ax = fig.axes[0]
    assert "two cross-entropies" in loss_ax.get_ylabel()
    assert "2 ln 2 = 1.39" in loss_ax.get_ylabel()
    assert len(_horizontal_at(loss_ax, 2 * np.log(2))) == 1


def test_render_table_keeps_the_digits_it_shows():
    table = pd.DataFrame({"lr": [4.66e-05, 0.000796], "3x ensemble (paper)": [0.89, np.nan],
                          "AUC (paper)": ["0.872 ± 0.005", "-"], "breasts": [200, 32],
                          "from": [0.0, 4.0], "w_joint": [0.000377, 0.0],
                          "w_mlo": [1.0, 0.0]},
                         index=pd.Index(["uni-view MLO", "Joint ResNet"], name="group"))
    fig = plots.render_table(table, "Table 1")
    cells = fig.axes[0].tables[0].get_celld()
    header = {cells[0, c].get_text().get_text(): c for c in range(table.shape[1] + 1)}

    def shown(row: int, col: str) -> str:
        return cells[row + 1, header[col]].get_text().get_text()

    assert shown(0, "3x ensemble (paper)") == "0.890"
    assert shown(1, "3x ensemble (paper)") == "-"
    assert [shown(r, "lr") for r in (0, 1)] == ["4.66e-05", "0.000796"]
    assert shown(0, "AUC (paper)") == "0.872 ± 0.005"
    assert [shown(r, "breasts") for r in (0, 1)] == ["200", "32"]
    assert [shown(r, "from") for r in (0, 1)] == ["0", "4"]  # epochs a NaN made float
    assert [shown(r, "w_joint") for r in (0, 1)] == ["0.000377", "0.000"]
    assert [shown(r, "w_mlo") for r in (0, 1)] == ["1.000", "0.000"]
    assert shown(0, "group") == "uni-view MLO"


def test_balance_figure_labels_every_y_axis_and_gives_the_gap_its_own(tmp_path):
    ogm = _run(tmp_path, "ogm", ogm_alpha=0.5)
    ogm.write_dynamics(0, "balance", [{"epoch": 0, "iteration": i, "rho_cc": 1.1,
                                       "k_cc": 0.8, "k_mlo": 1.0, "modulated": 1}
                                      for i in range(6)])
    rb = _run(tmp_path, "rebalance", rebalance={"epsilon": 0.01, "steps": 5})
    for epoch in range(2):
        rb.write_dynamics(epoch, "balance", [
            {"epoch": epoch, "iteration": i, "rebalancing": int(i % 2 == 1 and epoch > 0),
             "held": "mlo" if i % 2 == 1 and epoch > 0 else "", "d": 0.3 - 0.05 * i}
            for i in range(6)])
    fig = balancing_methods.balance_figure(ogm, rb)
    assert len(fig.axes) >= 3
    assert all(ax.get_ylabel() for ax in fig.axes)
    gap = next(ax for ax in fig.axes
               if any(ln.get_label().startswith("d = ") for ln in ax.get_lines()))
    bars = [ax for ax in fig.axes if any(
        c.get_label().startswith("re-balancing steps") for c in ax.containers)]
    assert len(bars) == 1 and bars[0] is not gap
    assert bars[0].get_ylim()[1] <= 1.1  # a share of steps, not the gap's scale


def test_reliance_figure_marks_the_papers_full_model_auc():
    groups = ["Joint ResNet", "+ Pretraining (whole model)"]
    cols = {f"{c}{s}": [0.8, 0.8] for c in ("full", "cc_only", "mlo_only")
            for s in ("", " lo", " hi")}
    fig = tables.reliance_figure(pd.DataFrame(cols, index=groups))
    marks = [c for c in fig.axes[0].collections if c.get_label().startswith("paper:")]
    assert len(marks) == 1
    assert np.allclose(marks[0].get_offsets()[:, 0], [paper.TABLE1["Joint ResNet"][0]])


def test_the_notebooks_tables_show_whole_cells_rounded_numbers_and_no_nan():
    assert plots.table_number(0.1234567) == "0.123"
    assert plots.table_number(2.5e-5) == "2.5e-05"  # a p-value keeps its digits
    assert plots.table_number(3.0) == "3" and plots.table_number(float("nan")) == "\u2013"
    html = plots._table_html(pd.DataFrame({"why": ["because " * 40], "AUC": [float("nan")],
                                           "p": [0.7654321]}))
    assert ("because " * 40).strip() in html  # no "..." where pandas would cut at 50
    assert "NaN" not in html and "..." not in html and "0.765" in html
