"""One entry point from a data source to the canonical data set: `prepare(dataset, profile)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mvlib.core import paths
from mvlib.data.store import BreastDataset
from mvlib.experiment import profiles
from mvlib.synth.generate import generate_dataset

REAL_SOURCES = ("nyu", "rsna", "vindr", "cbis-ddsm")
SOURCES = ("synthetic", *REAL_SOURCES)


def prepare(dataset: str = "synthetic", profile: str | None = None,
            data_root: str | Path | None = None, progress: bool = True,
            run_slices: Callable[[Path, list[list[int]]], None] | None = None,
            **knobs) -> BreastDataset:
    """Build (or reopen) the data set of `dataset` at the profile's image sizes.

    For `synthetic`, `knobs` override fields of the generator config (see SynthConfig).
    For a real source (nyu, rsna, vindr, cbis-ddsm), `data_root` is the folder it was
    downloaded to and `knobs` go to mvlib.data.real.prepare_real (pairing and split rules,
    crop, workers, and the adapter's own options); its jobs run in local processes, or as
    `run_slices` runs them (mvlib.executors.sweep.preparation_jobs: a SLURM array).
    """
    prof = profiles.get(profile)
    if dataset == "synthetic":
        return generate_dataset(prof.synthetic_config(**knobs), paths.store(), progress=progress)
    if dataset in REAL_SOURCES:
        from mvlib.data.real import prepare_real  # pydicom, h5py: only when needed

        sizes = {"cc": prof.cc_size, "mlo": prof.mlo_size}
        return prepare_real(dataset, data_root, sizes, paths.store(), progress=progress,
                            run_slices=run_slices, **knobs)
    raise ValueError(f"unknown dataset {dataset!r}: available sources are {list(SOURCES)}"
                     + (f" (data_root={data_root})" if data_root else ""))
