"""One entry point from a data source to the canonical data set: `prepare(dataset, profile)`."""

from __future__ import annotations

from pathlib import Path

from mvlib import paths, profiles
from mvlib.data.store import BreastDataset
from mvlib.synth.generate import generate_dataset

SOURCES = ("synthetic",)  # real-data adapters (nyu, rsna, vindr, cbis-ddsm) plug in here


def prepare(dataset: str = "synthetic", profile: str | None = None,
            data_root: str | Path | None = None, progress: bool = True,
            **knobs) -> BreastDataset:
    """Build (or reopen) the data set of `dataset` at the profile's image sizes.

    For `synthetic`, `knobs` override fields of the generator config (see SynthConfig).
    """
    prof = profiles.get(profile)
    if dataset == "synthetic":
        return generate_dataset(prof.synthetic_config(**knobs), paths.store(), progress=progress)
    raise ValueError(f"unknown dataset {dataset!r}: available sources are {list(SOURCES)}"
                     + (f" (data_root={data_root})" if data_root else ""))
