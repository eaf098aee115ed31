"""Adapters from public mammography data sets, as users download them, to an image list.

Each adapter's `list_images(root, **options)` reads the source's own files (CSVs, exam
lists) and returns one row per image (see common.IMAGE_COLUMNS), paths relative to
`root`; common.select_breasts pairs them into breasts by the shared, documented rules.
"""

from __future__ import annotations

from mvlib.data.adapters import cbis_ddsm, nyu, rsna, vindr

ADAPTERS = {
    "nyu": nyu.list_images,
    "rsna": rsna.list_images,
    "vindr": vindr.list_images,
    "cbis-ddsm": cbis_ddsm.list_images,
}
