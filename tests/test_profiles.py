import pytest

from mvlib.core import paths
from mvlib.experiment import profiles
from mvlib.study import protocol, without_heatmaps


def test_env_var_picks_the_profile(monkeypatch):
    monkeypatch.setenv("MVLIB_PROFILE", "smoke")
    assert profiles.get().name == "smoke"
    assert profiles.get("laptop").name == "laptop"  # an explicit name wins
    monkeypatch.delenv("MVLIB_PROFILE")
    assert profiles.get().name == "laptop"


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="smoke"):
        profiles.get("huge")


def test_views_differ_in_shape_as_in_the_paper():
    for prof in profiles.PROFILES.values():
        (hc, wc), (hm, wm) = prof.cc_size, prof.mlo_size
        assert hm / wm > hc / wc  # MLO is the taller, narrower crop
    assert profiles.get("paper").cc_size == (2677, 1942)
    cfg = profiles.get("paper").synthetic_config()
    assert cfg.cc_size == (2677 // 4, 1942 // 4)


def test_paths_resolve_from_the_repo_root(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert (paths.REPO / "mvlib").is_dir()
    monkeypatch.setenv("MVLIB_STORE", str(tmp_path / "store"))
    assert paths.store() == tmp_path / "store"
    assert paths.figures("smoke") == tmp_path / "store" / "smoke" / "figures"
    assert paths.figures("laptop") == paths.REPO / "figures"


def test_a_real_data_set_rides_on_the_profile_into_every_run(monkeypatch, tmp_path):
    from mvlib.data.adapters import examples
    from mvlib.study import protocol
    from mvlib.tools import notebooks

    monkeypatch.setenv("MVLIB_STORE", str(tmp_path / "store"))
    root = examples.write_rsna(tmp_path / "rsna")
    prof = profiles.get("smoke", "rsna", root, split_fractions=[0.4, 0.3, 0.3])
    assert (prof.dataset, prof.data_root) == ("rsna", str(root))
    assert prof.tag.startswith("smoke-rsna-")
    assert profiles.get("smoke", "rsna", tmp_path / "elsewhere").tag != prof.tag
    assert profiles.get("smoke") is profiles.PROFILES["smoke"]  # synthetic: unchanged
    cfg = protocol.config(prof, "joint", 1e-4, 0, "variants")
    assert (cfg.dataset, cfg.data_root) == ("rsna", str(root))
    assert cfg.knobs == {"split_fractions": [0.4, 0.3, 0.3]}
    assert cfg.channels == 1  # RSNA has no heatmaps: image-only runs
    from mvlib.study import protocol
    assert without_heatmaps.no_heatmap_settings(prof) == {}  # image only already: no Table 3 runs
    synthetic = protocol.config(profiles.get("smoke"), "joint", 1e-4, 0, "variants")
    assert synthetic.channels == 3 and synthetic.dataset == "synthetic"
    # Real-data outputs never land on the committed laptop figures or notebooks.
    tag = profiles.get("laptop", "rsna", root).tag
    assert paths.figures(tag) == tmp_path / "store" / tag / "figures"
    nb = notebooks.NOTEBOOKS / "00_data.ipynb"
    assert notebooks.output_path(nb, "laptop") == nb
    assert notebooks.output_path(nb, tag) == tmp_path / "store" / tag / "notebooks" / nb.name


def test_runs_take_their_thread_count_from_the_profile():
    from mvlib.study import protocol

    smoke, laptop = profiles.get("smoke"), profiles.get("laptop")
    assert smoke.workers == 1 and laptop.workers == 2
    assert protocol.config(smoke, "joint", 1e-4, 0, "x").threads == 2  # one run at a time
    assert protocol.config(laptop, "joint", 1e-4, 0, "x").threads == 1  # two side by side
    assert protocol.config(laptop, "joint", 1e-4, 0, "x", threads=2).threads == 2


def test_a_reseeded_rerun_keeps_the_search_seeds_and_names_its_outputs(monkeypatch):
    laptop = profiles.get("laptop")
    assert laptop.seed_list(5) == [0, 1, 2, 3, 4] and laptop.tag == "laptop"
    monkeypatch.setenv("MVLIB_RESEED", "100")
    again = profiles.get("laptop")
    assert again.seed_list(5) == [0, 100, 101, 102, 103]  # search seed 0, then new ones
    assert again.seed_list(1) == [0]
    assert again.tag == "laptop-reseed100"  # never overwrites the committed figures
    assert protocol.config(again, "joint", 1e-4, 0, "variants").digest() == \
        protocol.config(laptop, "joint", 1e-4, 0, "variants").digest()  # runs are shared
    monkeypatch.setenv("MVLIB_RESEED", "ten")
    with pytest.raises(ValueError, match="MVLIB_RESEED"):
        profiles.get("laptop")


def test_the_reseed_is_a_parameter_like_the_profile(monkeypatch):
    """A notebook's `reseed` parameter picks the seed list; None falls back to $MVLIB_RESEED
    and an explicit 0 (what `make reproduce` passes without RESEED) to the committed seeds."""
    monkeypatch.delenv("MVLIB_RESEED", raising=False)
    assert profiles.get("laptop", reseed=100).tag == "laptop-reseed100"
    monkeypatch.setenv("MVLIB_RESEED", "100")
    assert profiles.get("laptop", reseed=None).tag == "laptop-reseed100"
    assert profiles.get("laptop", reseed=0).tag == "laptop"
    with pytest.raises(ValueError, match="reseed=-1"):
        profiles.get("laptop", reseed=-1)


def test_the_laptop_budget_cuts_leave_the_other_profiles_whole():
    # notebooks/guide.md, "What was cut": the laptop profile's cuts, and nothing cut elsewhere
    from mvlib.study import balancing_methods

    laptop, paper = profiles.get("laptop"), profiles.get("paper")
    assert laptop.seeds == 3 and laptop.cue_strengths == (0.0, 1.0)
    assert balancing_methods.method_profile(laptop).seeds == laptop.method_seeds == 3
    assert not laptop.method_image_only
    assert paper.cue_strengths == (0.0, 0.5, 1.0) and paper.method_image_only
    assert balancing_methods.method_profile(paper).seeds == paper.seeds
    assert balancing_methods.image_only(laptop, {}, {"Joint ResNet": ["a run"]}) == {}
