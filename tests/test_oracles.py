"""Every flavor against the real library's own loss function (lightly, solo-learn, quadra).

The libraries are installed without their dependencies (tests/oracles.txt); `oracles` loads their
loss files. A library that cannot be loaded skips its tests with the reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from sslcheck.losses.flavors import LOSSES, resolve_params
from sslcheck.losses.pair import Batch
from tests.oracles import lightly_loss, quadra_losses, solo_losses, why_not

pytestmark = pytest.mark.oracle

RTOL = 1e-8
# (N, D): both Batch routes (Gram for D > 4N/3, direct otherwise), N = 2 included.
SHAPES = [(2, 3), (5, 16), (8, 16), (16, 8), (32, 12), (7, 64)]


def inputs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(-0.5, 0.5, d))
    za = rng.standard_normal((n, d)) * scale + rng.standard_normal(d)
    zb = za + 0.7 * rng.standard_normal((n, d)) * scale
    return torch.from_numpy(za), torch.from_numpy(zb)


def ours(loss: str, flavor: str, za: torch.Tensor, zb: torch.Tensor, **overrides: str) -> float:
    p = resolve_params(loss, flavor, overrides or None)
    return float(LOSSES[loss].compute(Batch(za, zb), p)["total"])


def spec_input() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    za = rng.standard_normal((8, 16))
    return torch.from_numpy(za), torch.from_numpy(za + 0.5 * rng.standard_normal((8, 16)))


def require(lib: Any, name: str) -> Any:
    if lib is None:
        pytest.skip(why_not(name))
    return lib


@pytest.fixture(scope="module")
def lightly() -> Any:
    return require(lightly_loss(), "lightly")


@pytest.fixture(scope="module")
def solo() -> Any:
    return require(solo_losses(), "solo-learn")


@pytest.fixture(scope="module")
def quadra() -> Any:
    return require(quadra_losses(), "quadra")


def check(got: float, want: torch.Tensor | float, rtol: float = RTOL) -> None:
    want = float(want)
    assert math.isfinite(want)
    assert got == pytest.approx(want, rel=rtol)


# --- lightly 1.6 --------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("flavor", ["paper", "lightly"])
def test_lightly_vicreg(lightly: Any, flavor: str, n: int, d: int) -> None:
    za, zb = inputs(n, d, 1)
    check(ours("vicreg", flavor, za, zb), lightly.VICRegLoss()(za, zb))


@pytest.mark.parametrize("n,d", SHAPES)
def test_lightly_vicreg_weights(lightly: Any, n: int, d: int) -> None:
    za, zb = inputs(n, d, 2)
    want = lightly.VICRegLoss(lambda_param=3.0, mu_param=7.0, nu_param=0.5, eps=1e-3)(za, zb)
    check(ours("vicreg", "lightly", za, zb, **{"lambda": "3", "mu": "7", "nu": "0.5", "eps": "1e-3"}), want)


@pytest.mark.parametrize("n,d", SHAPES)
def test_lightly_barlow(lightly: Any, n: int, d: int) -> None:
    za, zb = inputs(n, d, 3)
    check(ours("barlow", "lightly", za, zb), lightly.BarlowTwinsLoss(lambda_param=5e-3)(za, zb))


def test_lightly_barlow_default_lambda_is_the_preset(lightly: Any) -> None:
    za, zb = inputs(8, 16, 4)
    check(ours("barlow", "lightly", za, zb), lightly.BarlowTwinsLoss()(za, zb))


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", [0.5, 0.1, 0.2, 1.0, 0.07])
def test_lightly_nt_xent(lightly: Any, tau: float, n: int, d: int) -> None:
    za, zb = inputs(n, d, 5)
    want = lightly.NTXentLoss(temperature=tau, memory_bank_size=0)(za, zb)
    check(ours("nt_xent", "lightly", za, zb, tau=str(tau)), want)


def test_lightly_nt_xent_default_tau_is_the_preset(lightly: Any) -> None:
    za, zb = inputs(8, 16, 6)
    check(ours("nt_xent", "lightly", za, zb), lightly.NTXentLoss(memory_bank_size=0)(za, zb))


def test_lightly_reproduces_spec_values(lightly: Any) -> None:
    za, zb = spec_input()
    assert float(lightly.VICRegLoss()(za, zb)) == pytest.approx(15.086558003, rel=1e-9)
    assert float(lightly.BarlowTwinsLoss()(za, zb)) == pytest.approx(0.49935042794, rel=1e-9)
    assert float(lightly.NTXentLoss()(za, zb)) == pytest.approx(1.3090208148555, rel=1e-12)


# --- solo-learn 1.0.2 ---------------------------------------------------------------------


@pytest.mark.parametrize("n,d", SHAPES)
def test_solo_vicreg(solo: Any, n: int, d: int) -> None:
    za, zb = inputs(n, d, 7)
    check(ours("vicreg", "solo-learn", za, zb), solo.vicreg.vicreg_loss_func(za, zb))


@pytest.mark.parametrize("n,d", SHAPES)
def test_solo_barlow(solo: Any, n: int, d: int) -> None:
    """solo-learn's function defaults (5e-3, 0.025) are not its method defaults: pass them."""
    za, zb = inputs(n, d, 8)
    # BatchNorm1d makes float32 running buffers (default dtype) and CPU batch_norm refuses mixed
    # dtypes; in training mode the output does not depend on those buffers
    with default_dtype(torch.float64):
        want = solo.barlow.barlow_loss_func(za, zb, lamb=0.0051, scale_loss=0.024)
    check(ours("barlow", "solo-learn", za, zb), want)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.2])
def test_solo_nt_xent(solo: Any, tau: float, n: int, d: int) -> None:
    za, zb = inputs(n, d, 9)
    check(ours("nt_xent", "solo-learn", za, zb, tau=str(tau)), solo.simclr.simclr_loss_func(za, zb, temperature=tau))


def test_solo_nt_xent_default_tau_is_the_preset(solo: Any) -> None:
    za, zb = spec_input()
    check(ours("nt_xent", "solo-learn", za, zb), solo.simclr.simclr_loss_func(za, zb))
    assert float(solo.simclr.simclr_loss_func(za, zb)) == pytest.approx(0.03037260302, rel=1e-9)


# --- quadra 2.9 ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", SHAPES)
def test_quadra_vicreg(quadra: Any, n: int, d: int) -> None:
    za, zb = inputs(n, d, 10)
    check(ours("vicreg", "quadra", za, zb), quadra.vicreg.vicreg_loss(za, zb, lambd=25.0, mu=25.0))


@pytest.mark.parametrize("n,d", SHAPES)
def test_quadra_barlow_bug(quadra: Any, n: int, d: int) -> None:
    """quadra 2.9 as shipped: correlates standardised zb with raw zb (inputs: no constant column)."""
    za, zb = inputs(n, d, 11)
    check(ours("barlow", "quadra", za, zb), quadra.barlowtwins.barlowtwins_loss(za, zb, lambd=5e-3))


def test_quadra_barlow_spec_value(quadra: Any) -> None:
    za, zb = spec_input()
    want = quadra.barlowtwins.barlowtwins_loss(za, zb, lambd=5e-3)
    assert float(want) == pytest.approx(1.1522839886641, rel=1e-9)


@pytest.mark.parametrize("n,d", [s for s in SHAPES if s[0] >= 5])
@pytest.mark.parametrize("tau", [1.0, 0.5, 0.1])
def test_quadra_nt_xent(quadra: Any, tau: float, n: int, d: int) -> None:
    """quadra subtracts e^(1/tau) from each row sum and adds 1e-6 to it: ~3e-8 relative off the
    exact value at tau 1 on §5 (spec §3), so rtol 1e-7 here. The offset is absolute, so it grows
    as the row sums shrink: at N = 2 it reaches 1e-6 .. 1e-5 relative (next test)."""
    za, zb = inputs(n, d, 12)
    check(
        ours("nt_xent", "quadra", za, zb, tau=str(tau)), quadra.simclr.simclr_loss(za, zb, temperature=tau), rtol=1e-7
    )


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.1])
def test_quadra_nt_xent_deviation_is_its_1e6_offset(quadra: Any, tau: float) -> None:
    """At N = 2 quadra is 1e-6 .. 1e-5 relative off; adding its 1e-6 to the exact negative sums
    accounts for all of it."""
    za, zb = inputs(2, 3, 12)
    w = torch.nn.functional.normalize(torch.cat([za, zb]), dim=1)
    s = w @ w.T / tau
    neg = s.exp().masked_fill(torch.eye(4, dtype=torch.bool), 0).sum(1)
    positive = s[torch.arange(4), (torch.arange(4) + 2) % 4]
    with_offset = float((torch.log(neg + 1e-6) - positive).mean())
    exact = ours("nt_xent", "quadra", za, zb, tau=str(tau))
    assert exact == pytest.approx(float((torch.log(neg) - positive).mean()), rel=1e-12)
    want = float(quadra.simclr.simclr_loss(za, zb, temperature=tau))
    assert abs(exact - want) / want > 1e-7
    assert with_offset == pytest.approx(want, rel=1e-9)


def test_quadra_nt_xent_default_tau_is_the_preset(quadra: Any) -> None:
    za, zb = spec_input()
    check(ours("nt_xent", "quadra", za, zb), quadra.simclr.simclr_loss(za, zb), rtol=1e-7)


# --- the stand-in is not left behind --------------------------------------------------------


def test_torchvision_stand_in_is_removed(lightly: Any) -> None:
    import importlib.util
    import sys

    from tests.oracles import _TorchvisionStandIn

    assert not any(isinstance(f, _TorchvisionStandIn) for f in sys.meta_path)
    if "torchvision" not in sys.modules:
        assert importlib.util.find_spec("torchvision") is None


class default_dtype:
    """Temporarily set torch's default dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __enter__(self) -> None:
        self.saved = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc: object) -> None:
        torch.set_default_dtype(self.saved)
