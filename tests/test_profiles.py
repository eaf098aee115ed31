import pytest

from mvlib import paths, profiles


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
