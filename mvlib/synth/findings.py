"""Findings placed in 3-D breast coordinates, projected into CC and MLO, and rendered.

A finding sits at depth t (0 = chest wall, 1 = nipple) and at (s, v) in the breast's
cross-section (s medio-lateral, v cranio-caudal). CC looks from above, so its image row
follows s; MLO looks along a 45-degree oblique axis, so its row follows (s + v) / sqrt 2.
Both views put the finding at column t * D: the same distance from the nipple along the
nipple axis, which is how radiologists match a finding across the two views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mvlib.synth.anatomy import Geometry
from mvlib.synth.config import SynthConfig

MALIGNANT_KINDS = ("spiculated_mass", "fine_calcifications")
BENIGN_KINDS = ("round_mass", "coarse_calcifications")


@dataclass
class Finding:
    breast: int  # index within the batch
    kind: str
    malignant: bool
    biopsied: bool
    t: float
    s: float
    v: float
    radius: float  # fraction of breast depth
    contrast: float
    visible: dict[str, bool]
    view_contrast: dict[str, float]
    shape_seed: int


def sample_findings(rng: np.random.Generator, malignant: np.ndarray, benign: np.ndarray,
                    incidental: np.ndarray, cfg: SynthConfig) -> list[Finding]:
    """One finding per positive label (and per incidental benign-looking finding)."""
    findings = []
    for b in range(len(malignant)):
        wanted = []
        if malignant[b]:
            wanted.append((MALIGNANT_KINDS[int(rng.random() < 0.4)], True, True))
        if benign[b]:
            wanted.append((BENIGN_KINDS[int(rng.random() < 0.4)], False, True))
        elif incidental[b]:
            wanted.append((BENIGN_KINDS[int(rng.random() < 0.4)], False, False))
        for kind, is_malignant, biopsied in wanted:
            radius_r = rng.uniform(0, 1)
            angle = rng.uniform(0, 2 * np.pi)
            calc = kind.endswith("calcifications")
            lo, hi = cfg.calc_contrast if calc else cfg.mass_contrast
            contrast = rng.uniform(lo, hi)
            visible, view_contrast = {}, {}
            for view in ("cc", "mlo"):
                knobs = cfg.view(view)
                visible[view] = bool(rng.random() < knobs.visible_prob)
                view_contrast[view] = float(
                    visible[view] * contrast * knobs.contrast_scale * rng.uniform(0.85, 1.15))
            findings.append(Finding(
                breast=b, kind=kind, malignant=is_malignant, biopsied=biopsied,
                t=float(rng.uniform(0.15, 0.85)),
                s=float(0.8 * np.sqrt(radius_r) * np.cos(angle)),
                v=float(0.8 * np.sqrt(radius_r) * np.sin(angle)),
                radius=float(rng.uniform(*cfg.mass_radius)), contrast=float(contrast),
                visible=visible, view_contrast=view_contrast,
                shape_seed=int(rng.integers(2**31)),
            ))
    return findings


def project(f: Finding, view: str, geom: Geometry, size: tuple[int, int],
            depth_px: np.ndarray) -> tuple[float, float]:
    """(row, col) of the finding's centre in a view."""
    h = size[0]
    b, t = f.breast, f.t
    col = t * depth_px[b]
    if view == "cc":
        p = geom.cc_p[b]
        half = geom.cc_half[b] * h * (1 - t**p) ** (1 / p)
        return geom.cc_center[b] * h + f.s * half, col
    u = (f.s + f.v) / np.sqrt(2.0)
    nipple = geom.mlo_nipple[b] * h
    if u < 0:
        p, half0 = geom.mlo_p_up[b], nipple
    else:
        p, half0 = geom.mlo_p_low[b], (h - nipple) * geom.mlo_low[b]
    return nipple + u * half0 * (1 - t**p) ** (1 / p), col


def local_grid(size: tuple[int, int], row: float, col: float, reach: float
               ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Slices of the window within `reach` px of (row, col), clipped to the image, and the
    row and column offsets of its pixels from that centre."""
    h, w = size
    r0, r1 = max(int(row - reach), 0), min(int(row + reach) + 2, h)
    c0, c1 = max(int(col - reach), 0), min(int(col + reach) + 2, w)
    rr = np.arange(r0, r1, dtype=np.float32)[:, None] - row
    cc = np.arange(c0, c1, dtype=np.float32)[None, :] - col
    return (slice(r0, r1), slice(c0, c1)), rr, cc


def _dots(rr, cc, centres, sigmas, amps):
    out = np.zeros(np.broadcast_shapes(rr.shape, cc.shape), np.float32)
    for (dy, dx), sig, a in zip(centres, sigmas, amps, strict=True):
        out += a * np.exp(-((rr - dy) ** 2 + (cc - dx) ** 2) / (2 * sig**2))
    return out


def render(f: Finding, view: str, row: float, col: float, size: tuple[int, int],
           depth_px: float, view_rng: np.random.Generator):
    """Intensity patch of the finding in one view: (slices, patch) to add to the image."""
    shape = np.random.default_rng(f.shape_seed)  # same lesion shape in both views
    contrast = f.view_contrast[view]
    r0 = max(f.radius * depth_px, 1.5)
    px = max(size[1] / 192.0, 0.5)  # pixel scale relative to the 256x192 reference
    rot = view_rng.uniform(0, 2 * np.pi)  # projection changes the in-plane orientation
    if f.kind == "round_mass":
        sl, rr, cc = local_grid(size, row, col, 1.5 * r0 + 2)
        ecc = shape.uniform(0.75, 1.0)
        y = rr * np.cos(rot) + cc * np.sin(rot)
        x = -rr * np.sin(rot) + cc * np.cos(rot)
        d = np.sqrt(x**2 + (y / ecc) ** 2) / r0
        patch = np.clip((1 - d) * r0 / 0.8 + 0.5, 0, 1) * (1 - 0.3 * np.clip(d, 0, 1) ** 2)
    elif f.kind == "spiculated_mass":
        sl, rr, cc = local_grid(size, row, col, 3.0 * r0 + 2)
        theta = np.arctan2(rr, cc) - rot
        ks = np.arange(2, 7)
        amps, phases = shape.uniform(0, 0.14, len(ks)), shape.uniform(0, 2 * np.pi, len(ks))
        radius = r0 * (1 + np.sum(amps[:, None, None]
                                  * np.cos(ks[:, None, None] * theta + phases[:, None, None]), 0))
        d = np.sqrt(rr**2 + cc**2)
        patch = np.clip((radius - d) / (0.25 * r0) + 0.5, 0, 1)
        for ang in shape.uniform(0, 2 * np.pi, shape.integers(5, 11)) + rot:
            length = r0 * shape.uniform(1.6, 2.8)
            along = rr * np.sin(ang) + cc * np.cos(ang)
            across = -rr * np.cos(ang) + cc * np.sin(ang)
            inside = (along > 0) & (along < length)
            profile = np.exp(-(across**2) / (2 * (0.6 * px) ** 2))
            patch += 0.5 * inside * (1 - along / length) * profile
        patch = np.clip(patch, 0, 1)
    elif f.kind == "fine_calcifications":
        sl, rr, cc = local_grid(size, row, col, r0 + 3)
        n = shape.integers(6, 19)
        rad = 0.8 * r0 * np.sqrt(shape.uniform(0, 1, n))
        ang = shape.uniform(0, 2 * np.pi, n) + rot
        centres = np.stack([rad * np.sin(ang), rad * np.cos(ang)], 1)
        sigmas = np.maximum(shape.uniform(0.4, 0.8, n) * px, 0.6)  # >= 0.6 px: no aliasing
        patch = _dots(rr, cc, centres, sigmas, shape.uniform(0.6, 1, n))
    else:  # coarse_calcifications
        sl, rr, cc = local_grid(size, row, col, 1.5 * r0 + 8 * px)
        n = shape.integers(1, 5)
        rad = 1.2 * r0 * np.sqrt(shape.uniform(0, 1, n))
        ang = shape.uniform(0, 2 * np.pi, n) + rot
        centres = np.stack([rad * np.sin(ang), rad * np.cos(ang)], 1)
        patch = _dots(rr, cc, centres, shape.uniform(1.2, 2.2, n) * px, shape.uniform(0.7, 1, n))
    if f.kind.endswith("calcifications"):
        patch /= max(patch.max(), 1e-6)  # the brightest speck shows the recorded contrast
    return sl, (contrast * patch).astype(np.float32)
