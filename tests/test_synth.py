"""The generator: reproducible, anatomically consistent, and its knobs do what they claim."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mvlib.data.orientation import faces_right
from mvlib.synth import diagnostics
from mvlib.synth.config import SynthConfig, ViewKnobs
from mvlib.synth.generate import CHUNK, generate_chunk

SMALL = SynthConfig(cc_size=(96, 72), mlo_size=(108, 64),
                    patients={"train": 160, "val": 40, "test": 40})


def chunks(cfg, n):
    return [generate_chunk(cfg, k) for k in range(n)]


@pytest.fixture(scope="module")
def batches():
    return chunks(SMALL, 6)


def rows(bs):
    return pd.concat([b.rows for b in bs], ignore_index=True)


def findings(bs):
    return pd.concat([b.findings for b in bs], ignore_index=True)


def test_same_seed_same_bits_other_seed_other_data():
    a, b = generate_chunk(SMALL, 1), generate_chunk(SMALL, 1)
    for view in ("cc", "mlo"):
        assert a.views[view].tobytes() == b.views[view].tobytes()
    pd.testing.assert_frame_equal(a.rows, b.rows)
    c = generate_chunk(dataclasses.replace(SMALL, seed=1), 1)
    assert not np.array_equal(a.views["cc"], c.views["cc"])


def test_shapes_ranges_and_views_differ_in_shape(batches):
    b = batches[0]
    assert b.views["cc"].shape == (CHUNK, 3, 96, 72)
    assert b.views["mlo"].shape == (CHUNK, 3, 108, 64)
    for view in ("cc", "mlo"):
        arr = b.views[view]
        assert arr.min() >= 0 and arr.max() <= 1
        outside = ~b.masks[view]
        assert np.all(arr[:, 1:][np.broadcast_to(outside[:, None], arr[:, 1:].shape)] == 0), \
            "heatmaps must be zero outside the breast"


def test_every_breast_faces_right(batches):
    for b in batches[:2]:
        for view in ("cc", "mlo"):
            for img in b.views[view][:, 0]:
                assert faces_right(img)
                assert img[:, 0].max() > 0.2  # tissue touches the chest wall at x = 0


def test_labels_split_and_patients(batches):
    r = rows(batches)
    assert (r.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(r.laterality) == {"L", "R"}
    f = findings(batches)
    # A malignant label always comes with a malignant finding, benign with a biopsied benign one.
    mal_breasts = set(f[f.malignant].breast_id)
    assert mal_breasts == set(r[r.malignant == 1].breast_id)
    ben = f[~f.malignant & f.biopsied]
    assert set(ben.breast_id) == set(r[r.benign == 1].breast_id)


def test_findings_project_to_consistent_nipple_distance(batches):
    """Locate each visible mass in both views from the rendered lesion layer and the nipple
    from the rendered breast outline; the nipple-axis distance agrees across the views."""
    diffs, slack = [], []
    for b in batches:
        single = b.findings.breast_id.value_counts().loc[lambda c: c == 1].index
        for _, f in b.findings[b.findings.breast_id.isin(single)].iterrows():
            if not (f.cc_visible and f.mlo_visible) or "mass" not in f.kind:
                continue
            i = int(f.breast_id - b.rows.breast_id.iloc[0])
            dist = {}
            for view in ("cc", "mlo"):
                lesion = b.lesions[view][i]
                cols = np.nonzero(lesion.max(axis=0) > 0.5 * lesion.max())[0]
                lesion_col = cols.mean()
                nipple_col = np.nonzero(b.masks[view][i].any(axis=0))[0].max()
                dist[view] = nipple_col - lesion_col
            diffs.append(abs(dist["cc"] - dist["mlo"]))
            # An irregular mass seen at another angle shifts its extent by up to ~ a radius.
            slack.append(1.5 + f.radius * b.rows.depth_px.iloc[i])
    assert len(diffs) >= 10
    assert np.median(diffs) <= 2.0  # pixels, on a breast about 50 px deep
    assert all(d <= s for d, s in zip(diffs, slack, strict=True))


def test_cc_is_more_conspicuous_than_mlo_by_default():
    cfg = dataclasses.replace(SMALL, patients={"train": 400, "val": 0, "test": 400})
    bs = chunks(cfg, 50)
    r, f = rows(bs), findings(bs)
    auc = diagnostics.contrast_classifier_auc(r, f)
    assert auc["cc"] > auc["mlo"] + 0.03
    counts = diagnostics.one_view_only(f)
    assert counts["CC only"] > 2 * counts["MLO only"]


def test_equal_knobs_make_the_views_equally_informative():
    same = ViewKnobs(visible_prob=0.8, contrast_scale=1.0)
    cfg = dataclasses.replace(SMALL, cc=same, mlo=same,
                              patients={"train": 400, "val": 0, "test": 400})
    bs = chunks(cfg, 50)
    auc = diagnostics.contrast_classifier_auc(rows(bs), findings(bs))
    assert abs(auc["cc"] - auc["mlo"]) < 0.04


def test_invisible_view_shows_no_finding():
    cfg = dataclasses.replace(SMALL, mlo=ViewKnobs(visible_prob=0.0))
    b = generate_chunk(cfg, 0)
    assert b.lesions["mlo"].max() == 0 and b.lesions["cc"].max() > 0
    assert not b.findings.mlo_detected.any()


def test_heatmap_sensitivity_knob():
    blind = dataclasses.replace(SMALL, cc=ViewKnobs(heatmap_sensitivity=0.0),
                                heatmap_false_positives=0.0)
    sharp = dataclasses.replace(blind, cc=ViewKnobs(visible_prob=1.0, heatmap_sensitivity=1.0))
    peak = {}
    for name, cfg in (("blind", blind), ("sharp", sharp)):
        bs = chunks(cfg, 4)
        r = rows(bs)
        hm = np.concatenate([b.views["cc"][:, 2].max(axis=(1, 2)) for b in bs])
        peak[name] = roc_auc_score(r.malignant, hm)
    assert peak["sharp"] > 0.95
    assert peak["blind"] < 0.75


def test_shortcut_leaks_the_label_in_train_only():
    cfg = dataclasses.replace(SMALL, patients={"train": 300, "val": 150, "test": 150})
    r = rows(chunks(cfg, 38))
    leak = diagnostics.shortcut_leakage(r)
    # A binary cue present with p_pos (malignant) and p_neg (others) has AUC 0.5 + gap / 2.
    base, s, prev = cfg.shortcut_base_rate, cfg.mlo.shortcut_strength, cfg.p_malignant
    p_pos = base + s * (1 - base)
    p_neg = (base - prev * p_pos) / (1 - prev)
    assert s > 0 and leak.loc["train", "mlo"] == pytest.approx(0.5 + (p_pos - p_neg) / 2, abs=0.06)
    strong = dataclasses.replace(cfg, mlo=dataclasses.replace(cfg.mlo, shortcut_strength=0.9))
    assert diagnostics.shortcut_leakage(rows(chunks(strong, 38))).loc["train", "mlo"] > 0.8
    train = r[r.split == "train"]
    assert abs(train.mlo_cue.mean() - base) < 0.06  # the marker rate itself stays the base rate
    assert abs(leak.loc["test", "mlo"] - 0.5) < 0.12
    assert abs(leak.loc["val", "mlo"] - 0.5) < 0.12
    assert abs(leak.loc["train", "cc"] - 0.5) < 0.1  # CC has no shortcut by default
    # Control: strength 0 keeps the markers but removes the correlation.
    control = dataclasses.replace(cfg, mlo=dataclasses.replace(cfg.mlo, shortcut_strength=0.0))
    rc = rows(chunks(control, 38))
    assert abs(diagnostics.shortcut_leakage(rc).loc["train", "mlo"] - 0.5) < 0.1
    assert 0.2 < rc.mlo_cue.mean() < 0.4  # the markers are still there, at the base rate


def test_config_round_trips_through_json():
    d = SMALL.to_dict()
    again = SynthConfig.from_dict(d)
    assert again == SMALL and again.digest() == SMALL.digest()
    assert dataclasses.replace(SMALL, seed=5).digest() != SMALL.digest()


def test_prevalence_knobs_set_the_label_rates():
    cfg = dataclasses.replace(SMALL, p_malignant=0.3, p_benign=0.1, p_incidental=0.5,
                              patients={"train": 320, "val": 0, "test": 0})
    bs = chunks(cfg, 20)
    r, f = rows(bs), findings(bs)
    assert r.malignant.mean() == pytest.approx(0.3, abs=0.05)
    assert r.benign.mean() == pytest.approx(0.1, abs=0.04)
    unbiopsied = f[~f.malignant & ~f.biopsied]  # incidental benign-looking findings
    no_benign = (r.benign == 0).sum()
    assert len(unbiopsied) / no_benign == pytest.approx(0.5, abs=0.07)
    assert set(unbiopsied.breast_id).isdisjoint(r[r.benign == 1].breast_id)


def test_false_positive_knob_lights_up_normal_breasts():
    normal = dict(p_malignant=0.0, p_benign=0.0, p_incidental=0.0, heatmap_noise=0.0)
    quiet = dataclasses.replace(SMALL, heatmap_false_positives=0.0, **normal)
    noisy = dataclasses.replace(SMALL, heatmap_false_positives=3.0, **normal)
    peak = {name: np.concatenate([b.views["cc"][:, 1:].max(axis=(1, 2, 3))
                                  for b in chunks(cfg, 2)])
            for name, cfg in (("quiet", quiet), ("noisy", noisy))}
    assert peak["quiet"].max() == 0.0  # no finding, no false positive, no noise: empty maps
    assert (peak["noisy"] > 0.05).mean() > 0.9


def test_marker_counterfactual_leaves_the_default_output_alone():
    """The counterfactual rendering changes nothing the data set holds: the same arrays and
    rows, and its marker-on / marker-off images agree with the generated one."""
    for k in (0, 1):
        plain, cf = generate_chunk(SMALL, k), generate_chunk(SMALL, k, marker_counterfactual=True)
        assert plain.mlo_marker is None
        for view in ("cc", "mlo"):
            assert plain.views[view].tobytes() == cf.views[view].tobytes()
        pd.testing.assert_frame_equal(plain.rows, cf.rows)
        cue = cf.rows.mlo_cue.to_numpy().astype(bool)
        assert cue.any() and not cue.all()
        np.testing.assert_array_equal(cf.mlo_marker["with"][cue], cf.views["mlo"][cue, 0])
        np.testing.assert_array_equal(cf.mlo_marker["without"][~cue], cf.views["mlo"][~cue, 0])
        assert (cf.mlo_marker["with"] > cf.mlo_marker["without"]).any(axis=(1, 2)).all()
