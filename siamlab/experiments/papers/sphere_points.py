"""Measures of a set of unit vectors (GEN Fig. 2, :mod:`.gen_sphere`): pairwise angles, the orthonormal frame that
fits them best and their mean angle to its ±axes, the evenness of nearest neighbours, and a signature that is the same
for configurations related by a rotation, a reflection or a relabelling of the points. NumPy arrays [N, d], rows of
norm 1; angles in degrees."""
from __future__ import annotations

import math

import numpy as np


def pairwise_deg(z: np.ndarray) -> np.ndarray:
    """Angles (degrees) between every two unit vectors, [N, N]."""
    return np.degrees(np.arccos(np.clip(z @ z.T, -1.0, 1.0)))


def axis_deg(z: np.ndarray, frame: np.ndarray) -> float:
    """Mean angle (degrees) of the points to the nearest ±axis of ``frame`` (rows: orthonormal axes)."""
    return float(_axis_deg_of(z, frame[None])[0])


def _axis_deg_of(z: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """:func:`axis_deg` of every frame in ``frames`` [K, d, d]."""
    cos = np.abs(np.einsum("nd,kad->kna", z, frames)).max(axis=2)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean(axis=1)


def _frames_through_points(z: np.ndarray) -> np.ndarray:
    """Frames [K, d, d] with an axis through a point (and, in d = 3, a second in the plane of another): a frame on
    which the points lie passes through them this way."""
    if z.shape[1] == 2:
        return np.stack([z, np.stack([-z[:, 1], z[:, 0]], axis=1)], axis=1)
    a, b = np.repeat(z, len(z), axis=0), np.tile(z, (len(z), 1))
    v = b - np.sum(a * b, axis=1, keepdims=True) * a
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    keep = norm[:, 0] > 1e-6
    a, v = a[keep], v[keep] / norm[keep]
    return np.stack([a, v, np.cross(a, v)], axis=1)


def frame_fit(z: np.ndarray) -> tuple:
    """(mean angle to the nearest ±axis in degrees, frame): the orthonormal frame that fits the points best — the best
    of the frames through the points, refined by Nelder–Mead over rotations of it (to 1e-4 rad)."""
    from scipy.optimize import minimize
    from scipy.spatial.transform import Rotation

    frames = _frames_through_points(z)
    best = frames[int(np.argmin(_axis_deg_of(z, frames)))]
    d = z.shape[1]

    def turned(w):
        if d == 2:
            c, s = math.cos(w[0]), math.sin(w[0])
            return best @ np.array([[c, -s], [s, c]])
        return best @ Rotation.from_rotvec(w).as_matrix().T

    res = minimize(lambda w: axis_deg(z, turned(w)), np.zeros(1 if d == 2 else 3), method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-4})
    frame = turned(res.x) if res.fun < axis_deg(z, best) else best
    return axis_deg(z, frame), frame


def nn_cv(z: np.ndarray) -> float:
    """Coefficient of variation (std / mean) of each point's angle to its nearest neighbour: 0 for an even spread."""
    a = pairwise_deg(z)
    np.fill_diagonal(a, np.inf)
    nn = a.min(axis=1)
    return float(nn.std() / nn.mean()) if nn.mean() > 0 else float("nan")


def signature(z: np.ndarray) -> list:
    """The sorted pairwise angles (degrees): the same for configurations related by a rotation, reflection or
    relabelling of the points."""
    a = pairwise_deg(z)
    return sorted(float(v) for v in a[np.triu_indices(len(z), 1)])


def signature_distance(a: list, b: list) -> float:
    """Mean absolute difference of two signatures (degrees)."""
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))
