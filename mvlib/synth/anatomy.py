"""Breast anatomy of the synthetic views: outline, pectoral muscle, skin line and texture.

Every breast faces right: chest wall at x = 0, nipple at x = D (the breast depth in
pixels, shared by both views of a breast). Outlines are superellipses; the MLO outline is
asymmetric, reaching the top edge at the chest wall (axillary tail), and carries a
pectoral-muscle triangle. Parenchyma is power-law (1/f^beta) noise, the classic model of
mammographic texture (Burgess 2001).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.fft
import scipy.special


@dataclass
class Geometry:
    """Per-breast shape parameters (arrays of length n) shared by both views."""

    depth: np.ndarray  # breast depth as a fraction of the narrower view's width
    cc_center: np.ndarray  # CC nipple row, fraction of H
    cc_half: np.ndarray  # CC half-height at the chest wall, fraction of H
    cc_p: np.ndarray  # CC superellipse exponent
    mlo_nipple: np.ndarray  # MLO nipple row, fraction of H
    mlo_low: np.ndarray  # MLO lower half-height, fraction of (H - nipple row)
    mlo_p_up: np.ndarray
    mlo_p_low: np.ndarray
    pect_width: np.ndarray  # pectoral muscle width at the top edge, fraction of depth
    pect_height: np.ndarray  # pectoral muscle height at the chest wall, fraction of H
    beta: np.ndarray  # texture power-law exponent
    density: np.ndarray  # fibroglandular fraction

    def take(self, idx: slice | np.ndarray) -> Geometry:
        """The geometry of a subset of the breasts."""
        return Geometry(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def sample_geometry(rng: np.random.Generator, n: int, beta: tuple[float, float],
                    density: tuple[float, float]) -> Geometry:
    u = rng.uniform
    return Geometry(
        depth=u(0.68, 0.88, n), cc_center=u(0.47, 0.53, n), cc_half=u(0.40, 0.47, n),
        cc_p=u(1.8, 2.4, n), mlo_nipple=u(0.52, 0.6, n), mlo_low=u(0.8, 0.92, n),
        mlo_p_up=u(1.1, 1.4, n), mlo_p_low=u(1.8, 2.4, n), pect_width=u(0.25, 0.42, n),
        pect_height=u(0.35, 0.6, n), beta=u(*beta, n), density=u(*density, n),
    )


def depth_pixels(geom: Geometry, cc_size: tuple[int, int], mlo_size: tuple[int, int]
                 ) -> np.ndarray:
    """Breast depth D in pixels, identical in both views (same pixel spacing)."""
    return geom.depth * min(cc_size[1], mlo_size[1])


def superellipse_level(view: str, geom: Geometry, size: tuple[int, int],
                       depth_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Superellipse level q (n, H, W) and exponent p: q < 1 inside the breast, 1 on the skin.

    q = (x / D)^p + |rho|^p, where rho is the row offset from the nipple row over the
    half-height; 1 - q is about p times the normalised distance to the skin line.
    """
    h, w = size
    rows = np.arange(h, dtype=np.float32)[None, :, None]
    cols = np.arange(w, dtype=np.float32)[None, None, :]
    x = cols / depth_px[:, None, None].astype(np.float32)
    if view == "cc":
        centre = (geom.cc_center * h)[:, None, None]
        rho = np.abs(rows - centre) / (geom.cc_half * h)[:, None, None]
        p = geom.cc_p[:, None, None].astype(np.float32)
        return (x**p + (rho**p).astype(np.float32)).astype(np.float32), p
    nipple = (geom.mlo_nipple * h)[:, None, None]
    up = rows < nipple
    half = np.where(up, nipple, (h - nipple) * geom.mlo_low[:, None, None])
    rho = np.abs(rows - nipple) / half
    p_up = geom.mlo_p_up[:, None, None].astype(np.float32)
    p_low = geom.mlo_p_low[:, None, None].astype(np.float32)
    p = np.where(up, p_up, p_low)
    # Powers on (n, 1, W) rows, then a row-wise choice: no full-size pow.
    q = np.where(up, x**p_up, x**p_low)
    q += (rho**p).astype(np.float32)
    return q, p


def power_law_noise(rng: np.random.Generator, n: int, size: tuple[int, int],
                    beta: np.ndarray | float, bandwidth: float = 1.0) -> np.ndarray:
    """Unit-std Gaussian fields (n, H, W) with power spectrum ~ 1/f^beta.

    With `bandwidth` < 1 only frequencies below bandwidth x Nyquist are drawn, on a coarse
    grid that is then upsampled linearly (two small matrix products): the power-law tail
    above is negligible for beta >= 3, and drawing less makes the generator fast.
    """
    h, w = size
    if bandwidth < 1.0:
        ch, cw = max(int(np.ceil(h * bandwidth)), 4), max(int(np.ceil(w * bandwidth)), 4)
        # Normalised on the coarse grid: interpolation shrinks the std a little, no matter.
        return upsample(power_law_noise(rng, n, (ch, cw), beta), size)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    logf = np.log(np.sqrt(fy**2 + fx**2) + 1e-12).astype(np.float32)
    beta = np.broadcast_to(np.asarray(beta, dtype=np.float32), (n,))
    amp = np.exp(logf[None] * (-beta[:, None, None] / 2))
    amp[:, 0, 0] = 0.0
    band = rng.standard_normal((2, n, *logf.shape), dtype=np.float32)
    spec = (band[0] + 1j * band[1]) * amp
    field = scipy.fft.irfft2(spec, s=(h, w), axes=(1, 2))
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-12
    return field


def upsample(fields: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Linear upsampling of (n, h, w) fields to (n, H, W) as two matrix products."""
    up_h = _linear_upsampler(fields.shape[1], size[0])
    up_w = _linear_upsampler(fields.shape[2], size[1])
    return up_h @ fields @ up_w.T


def _linear_upsampler(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of linear interpolation weights (pixel-centre aligned)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - (pos - lo)
    m[np.arange(n_out), hi] += pos - lo
    return m


def render_tissue(rng: np.random.Generator, view: str, geom: Geometry,
                  size: tuple[int, int], depth_px: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Render the normal breast of one view.

    Returns (image (n,H,W) in [0,1], breast mask).
    """
    n, (h, w) = len(geom.depth), size
    q, p = superellipse_level(view, geom, size, depth_px)
    mask = q < 1.0  # outside, rim = 0 makes the tissue image 0 as well
    texture = power_law_noise(rng, n, size, geom.beta, bandwidth=0.4)
    # Smooth glandular field drawn on a coarse grid, upsampled, then thresholded at the
    # breast's density quantile of a standard Gaussian (soft edge).
    coarse = power_law_noise(rng, n, (max(h // 10, 4), max(w // 10, 4)), 4.0)
    thresh = scipy.special.ndtri(1.0 - geom.density).astype(np.float32)[:, None, None]
    gland = upsample(coarse, size)
    gland -= thresh
    gland *= 3.0
    np.tanh(gland, out=gland)
    gland *= 0.5
    gland += 0.5
    # rim ~ normalised distance to the skin line; in-place ops keep temporaries few.
    rim = np.subtract(1.0, q, out=q)
    rim /= p
    np.clip(rim, 0.0, 1.0, out=rim)
    gland *= 0.4 + 0.6 * np.sqrt(rim)
    thickness = np.minimum(rim * (1 / 0.12), 1.0)
    np.sqrt(thickness, out=thickness)
    image = gland * (0.38 + 0.05 * texture)
    image += 0.30 + 0.025 * texture
    image *= thickness
    # Skin line: a thin brighter rim about 1.5 px wide.
    skin_width = (1.5 / np.minimum(depth_px, h * 0.4)).astype(np.float32)[:, None, None]
    np.add(image, 0.25, out=image, where=mask & (rim < skin_width))
    if view == "mlo":
        rows = np.arange(h, dtype=np.float32)[None, :, None]
        cols = np.arange(w, dtype=np.float32)[None, None, :]
        pw = (geom.pect_width * depth_px).astype(np.float32)[:, None, None]
        ph = (geom.pect_height * h).astype(np.float32)[:, None, None]
        edge = pw * (1.0 - rows / ph) - cols  # > 0 inside the muscle
        muscle = np.clip(edge / 2.0 + 0.5, 0.0, 1.0)
        image += muscle * (0.62 + 0.03 * texture - image)
        image *= mask
    np.clip(image, 0.0, 1.0, out=image)
    return image, mask
