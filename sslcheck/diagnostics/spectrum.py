"""Eigen-spectra of one view and the rank metrics read from them (spec/diagnostics.md §2, §3).

Both spectra come from the merged float64 moments of all N rows, one `eigvalsh` each:

    Cov = M2 / (N - 1)                 centred: lambda_k = eig_k(Cov)
    G   = M2 + N mu mu^T  (= Z^T Z)     uncentred: sigma_k = sqrt(max(eig_k(G), 0)), k = 1..min(N, D)

G is a sum of positive semi-definite terms, so nothing cancels; `Z^T Z - N mu mu^T` is never
formed (at offset 1e4 its eigenvalues are off by 1.5e-6 relative in float64). The eigenvalues of
G are the squared singular values of Z: the same RankMe as an SVD of the raw matrix, once the
eigenvalues that rank(Z) <= N and rank(Zc) <= N - 1 make zero, and those at or below the
numerical-rank tolerance (`resolved`), are read as the zeros they are.

Where every row was kept and N < D, both come from the N x N Grams of the rows instead, in
float64: Z Z^T has the nonzero eigenvalues of Z^T Z (and Zc Zc^T those of Zc^T Zc), the other
D - N are the zeros above. An N x N solve for a D x D one: at N = 2048, D = 8192, where a
D x D solve is bound by memory bandwidth (55-63 s each, four a run), 0.4 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

RANKME_EPS = 1e-7  # Garrido et al.'s epsilon added to every p_k (RankMe reference code)
ALPHA_FIRST_K = 6  # alpha-ReQ fits k = 6..100 (Agrawal et al.'s reptrix range)
ALPHA_LAST_K = 100
ALPHA_MIN_POINTS = 3
NUMPY_EIGEN_MAX_DIM = 3072  # numpy's LAPACK for the CPU eigenvalues up to this D, torch's above
NUMPY_EIGEN_MAX_DIM_MKL_NATIVE = 1024  # ... up to this D where torch's MKL runs on an Intel CPU


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues of one view, float64 numpy, descending.

    `covariance`: all D eigenvalues of Cov = M2 / (N - 1), clamped at 0, those past rank(Zc) <=
    N - 1 set to 0. `gram`: all D eigenvalues of G = M2 + N mu mu^T, clamped at 0, those past
    rank(Z) <= N set to 0. `zero_covariance`: Cov is zero to the compute precision
    (every column constant), which leaves the centred metrics undefined.
    """

    n: int
    covariance: np.ndarray
    gram: np.ndarray
    zero_covariance: bool

    @property
    def d(self) -> int:
        return int(self.covariance.shape[0])

    @property
    def m(self) -> int:
        """min(N, D): the number of singular values of Z (and of Zc)."""
        return min(self.n, self.d)


@cache
def _mkl_native() -> bool:
    """Whether torch's LAPACK is MKL on an Intel CPU, where MKL takes its fastest code paths."""
    try:
        intel = "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return intel and torch.backends.mkl.is_available()


def _descending_eigenvalues(matrix: Tensor) -> np.ndarray:
    """Eigenvalues of a symmetric matrix in float64, largest first, negatives (rounding) to 0.
    On the CPU up to D = NUMPY_EIGEN_MAX_DIM numpy's LAPACK (OpenBLAS) solves them, above it
    torch's (MKL in its x86 wheels): on an AMD EPYC D = 2048 0.40 against 0.54 s, D = 3072 1.6 s
    each, D = 4096 3.5-3.9 against 2.3-2.7 s (one solve, 2 cores, interleaved). On an Intel Xeon
    (Sapphire Rapids) MKL was the faster from D = 2048: 0.27 against 0.43 s, D = 3072 0.77
    against 1.33 s, equal at D = 256-1024 (`_mkl_native`)."""
    numpy_max = NUMPY_EIGEN_MAX_DIM_MKL_NATIVE if _mkl_native() else NUMPY_EIGEN_MAX_DIM
    if matrix.device.type == "cpu" and matrix.shape[0] <= numpy_max:
        values = np.linalg.eigvalsh(matrix.to(torch.float64).numpy())[::-1]
        return np.ascontiguousarray(values.clip(min=0))
    return torch.linalg.eigvalsh(matrix.to(torch.float64)).flip(0).clamp_min(0).cpu().numpy()


def _padded(values: np.ndarray, d: int) -> np.ndarray:
    """Descending eigenvalues of an N x N Gram, followed by the D - N zeros of the D x D matrix."""
    return np.concatenate([values, np.zeros(d - values.shape[0])])


def view_spectrum(n: int, mean: Tensor, m2: Tensor, eps: float, rows: Tensor | None = None) -> Spectrum:
    """Both spectra of one view from its count, mean [D] and centred co-moment M2 [D, D], or
    from `rows` (the kept rows) where they are all N of them and N < D (module docstring).

    `eps` is the machine epsilon of the compute dtype. Cov counts as zero when every
    std_k <= eps * max_k |mean_k|: a spread below one unit in the last place of the mean is
    rounding, not data (a constant view gives M2 = 0 exactly on CPU; the bound keeps that true
    where a backend's block means round differently).

    >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    >>> zc = z - z.mean(0)
    >>> s = view_spectrum(3, z.mean(0), zc.T @ zc, 2.2e-16)
    >>> s.covariance.tolist(), s.gram.tolist(), s.zero_covariance
    ([1.0, 0.0], [2.0, 0.0], False)
    """
    m2 = m2.to(torch.float64)
    mean = mean.to(torch.float64)
    var = (m2.diagonal() / (n - 1)).clamp_min(0)
    floor = eps * float(mean.abs().max()) if mean.numel() else 0.0
    zero = float(var.max().sqrt()) <= floor
    d = m2.shape[0]
    if rows is not None and rows.shape[0] == n < d:
        z = rows.to(torch.float64)
        zc = z - z.mean(0)
        covariance = _padded(_descending_eigenvalues(zc @ zc.T / (n - 1)), d)
        gram = _padded(_descending_eigenvalues(z @ z.T), d)
    else:
        covariance = _descending_eigenvalues(m2 / (n - 1))
        gram = _descending_eigenvalues(m2 + n * torch.outer(mean, mean))
    covariance[0 if zero else n - 1 :] = 0.0  # rank(Zc) <= N - 1: these are rounding, exactly 0
    gram[n:] = 0.0  # rank(Z) <= N
    return Spectrum(n=n, covariance=covariance, gram=gram, zero_covariance=zero)


def effective_rank(sigma: np.ndarray) -> float | None:
    """RankMe: exp(-sum_k p_k ln p_k), p_k = sigma_k / sum(sigma) + 1e-7.

    Garrido et al., "RankMe", ICML 2023 (arXiv:2210.02885), after Roy & Vetterli (2007); the 1e-7
    is the authors' epsilon, so a rank-1 input reads about 1 + (m - 1) * 1e-7 * ln(1e7) (1.000101
    for m = 64) and 64 equal values read 64.0013. Applied to singular values (sigma), not eigenvalues (sigma^2).
    None when every sigma is zero.

    >>> round(effective_rank(np.ones(4)), 6)
    4.000001
    """
    total = float(sigma.sum())
    if total <= 0:
        return None
    p = sigma / total + RANKME_EPS
    return float(np.exp(-(p * np.log(p)).sum()))


def resolved(eigenvalues: np.ndarray) -> np.ndarray:
    """The eigenvalues with those at or below `rank_tolerance` set to 0.

    `eigvalsh` of a D x D Gram matrix is accurate to ~eps * lambda_1 in absolute terms, so an
    exactly zero singular value comes back as ~sqrt(eps) * sigma_1 ~ 1e-8 sigma_1: noise of the
    size of RankMe's 1e-7 floor (rank-1 input would read 1.000104, not the SVD's 1.000101, and
    the zero that centring creates when N <= D would move effective_rank_centered by ~1e-7).
    Below the tolerance an SVD of the raw matrix reads ~0, so 0 is the value the Gram route can
    stand behind.
    """
    return np.where(eigenvalues > rank_tolerance(eigenvalues), eigenvalues, 0.0)


def uncentered_sigma(spectrum: Spectrum) -> np.ndarray:
    """Singular values of Z, sigma_k = sqrt(eig_k(Z^T Z)), k = 1..min(N, D) (`resolved`)."""
    return np.sqrt(resolved(spectrum.gram)[: spectrum.m])


def centered_sigma(spectrum: Spectrum) -> np.ndarray:
    """Singular values of Zc, sigma_k = sqrt((N - 1) lambda_k), k = 1..min(N, D) (`resolved`),
    including the zero that centring creates when N <= D."""
    return np.sqrt((spectrum.n - 1) * resolved(spectrum.covariance)[: spectrum.m])


def stable_rank(eigenvalues: np.ndarray) -> float | None:
    """sum(lambda) / max(lambda) (Rudelson & Vershynin 2007); None when lambda is all zero.

    >>> stable_rank(np.array([2.0, 1.0, 1.0]))
    2.0
    """
    top = float(eigenvalues.max()) if eigenvalues.size else 0.0
    if top <= 0:
        return None
    return float(eigenvalues.sum()) / top


def rank_tolerance(eigenvalues: np.ndarray) -> float:
    """max(lambda) * D * eps64: numpy `matrix_rank`'s default tolerance, on a D x D spectrum."""
    top = float(eigenvalues.max()) if eigenvalues.size else 0.0
    return top * eigenvalues.shape[0] * float(np.finfo(np.float64).eps)


def numerical_rank(eigenvalues: np.ndarray) -> int:
    """#{k : lambda_k > max(lambda) * D * eps64} (0 for a zero covariance).

    >>> numerical_rank(np.array([1.0, 1e-3, 1e-17]))
    2
    """
    return int((eigenvalues > rank_tolerance(eigenvalues)).sum())


@dataclass(frozen=True)
class PowerLawFit:
    """ln lambda_k ~ intercept - alpha ln k over the fitted k (1-based)."""

    alpha: float
    intercept: float
    k: np.ndarray


def alpha_req_fit(eigenvalues: np.ndarray, n: int) -> PowerLawFit | None:
    """alpha-ReQ: the decay alpha of lambda_k ~ k^-alpha.

    Weighted least squares of ln lambda_k on -ln k with weights 1/k on the squared residuals,
    k = 6..min(100, r) (1-based), r = #lambda above the `numerical_rank` tolerance capped at
    min(D, N - 1); with fewer than 3 such k, k = 1..min(100, r); None when r < 3.
    Agrawal et al., "alpha-ReQ", NeurIPS 2022; the range and the 1/k weights follow the authors'
    reptrix package.

    >>> k = np.arange(1, 41.0)
    >>> round(alpha_req_fit(3.0 * k**-1.5, n=100).alpha, 12)
    1.5
    """
    d = eigenvalues.shape[0]
    r = min(numerical_rank(eigenvalues), d, n - 1)
    if r < ALPHA_MIN_POINTS:
        return None
    last = min(ALPHA_LAST_K, r)
    first = ALPHA_FIRST_K if last - ALPHA_FIRST_K + 1 >= ALPHA_MIN_POINTS else 1
    k = np.arange(first, last + 1, dtype=np.float64)
    y = np.log(eigenvalues[first - 1 : last])
    x = -np.log(k)
    w = 1.0 / k
    design = np.stack([np.ones_like(x), x], axis=1)
    wd = design * w[:, None]
    intercept, alpha = np.linalg.solve(design.T @ wd, wd.T @ y)
    return PowerLawFit(alpha=float(alpha), intercept=float(intercept), k=k)


def spectrum_metrics(spectrum: Spectrum, fit: PowerLawFit | None) -> dict[str, float | int | None]:
    """The rank metrics of one view, in the order of spec §2 (eigenvalue lists excluded); `fit`
    is `alpha_req_fit`'s result (None where undefined or the covariance is zero).

    rank_ratio = effective_rank / min(N, D); rank_ratio_centered = effective_rank_centered /
    min(N - 1, D): centring removes one dimension, so dividing by min(N, D) would floor the ratio
    at 1/N (MONAI #8996).
    """
    er = effective_rank(uncentered_sigma(spectrum))
    zero = spectrum.zero_covariance
    erc = None if zero else effective_rank(centered_sigma(spectrum))
    return {
        "effective_rank": er,
        "effective_rank_centered": erc,
        "rank_ratio": None if er is None else er / spectrum.m,
        "rank_ratio_centered": None if erc is None else erc / min(spectrum.n - 1, spectrum.d),
        "stable_rank": None if zero else stable_rank(spectrum.covariance),
        "numerical_rank": numerical_rank(spectrum.covariance),
        "alpha_req": None if fit is None else fit.alpha,
    }
