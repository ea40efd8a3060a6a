"""Flavors: each library's conventions as named presets of the losses' explicit parameters.

Facts per library are in `spec/losses.md` (read from each library's code and checked against it).
A flavor without its own implementation of a loss uses the defaults of the library that defines
it; `LossSpec.source` names where each preset comes from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from sslcheck.errors import UsageError
from sslcheck.losses import barlow_loss as barlow
from sslcheck.losses import cosine_loss as cosine
from sslcheck.losses import dcl_loss as dcl
from sslcheck.losses import hypersphere_loss as hypersphere
from sslcheck.losses import infonce_loss as infonce
from sslcheck.losses import mmcr_loss as mmcr
from sslcheck.losses import nt_xent_loss as nt_xent
from sslcheck.losses import vicreg_loss as vicreg
from sslcheck.losses.pair import PairStats

FLAVORS = ("paper", "lightly", "solo-learn", "tf-similarity", "quadra", "edifice")


@dataclass(frozen=True)
class LossSpec:
    """A loss: its JSON key, terms, term function, per-flavor presets and their sources.

    `from_rows` losses need the rows themselves (contrastive); the others need only second
    moments, so their whole-set value comes exactly from the merged statistics. Every `compute`
    accepts stats with leading batch dimensions ([..., B, D] rows: one value per batch).
    `row_mean` losses are affine in a mean of per-row values, so their whole-set value is the
    row-weighted mean of chunk values: exact for any N, with no rows kept.
    """

    name: str
    terms: tuple[str, ...]
    compute: Callable[[PairStats, Any], dict[str, Tensor]]
    presets: Mapping[str, Any]
    sources: Mapping[str, str]
    from_rows: bool = False
    row_mean: bool = False
    warnings: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @staticmethod
    def weights(params: Any) -> dict[str, float]:
        """The factor each unweighted term carries in `total` (none for single-term losses)."""
        weights = getattr(params, "weights", None)
        return weights() if weights else {}


def _borrowed(own: Mapping[str, str], defaults: str, borrowed: str = "its defaults") -> dict[str, str]:
    """Sources of a relative loss: each flavor's own implementation, else the defining library's defaults."""
    return {fl: own.get(fl, f"{defaults}, {borrowed} (no {fl}-flavor implementation)") for fl in FLAVORS}


V, B, X = vicreg.VICRegParams, barlow.BarlowParams, nt_xent.NTXentParams

LOSSES: dict[str, LossSpec] = {
    "vicreg": LossSpec(
        "vicreg",
        vicreg.TERMS,
        vicreg.vicreg_terms_of,
        presets={
            "paper": V(),
            "lightly": V(),
            "solo-learn": V(var_views="sum"),
            "quadra": V(var_views="sum"),
            "tf-similarity": V(var_ddof=0),
            "edifice": V(var_ddof=0, var_views="sum"),
        },
        sources={
            "paper": "facebookresearch/vicreg (main_vicreg.py)",
            "lightly": "lightly 1.6 lightly.loss.VICRegLoss",
            "solo-learn": "solo-learn 1.0.2 solo.losses.vicreg_loss_func",
            "quadra": "quadra 2.9 quadra.losses.ssl.vicreg_loss",
            "tf-similarity": "tensorflow_similarity VicRegLoss (mean of its per-example vector)",
            "edifice": "edifice (Elixir Nx/Axon) VICReg loss",
        },
    ),
    "barlow": LossSpec(
        "barlow",
        barlow.TERMS,
        barlow.barlow_terms_of,
        presets={
            "paper": B(),
            "lightly": B(lambda_=5e-3),
            "solo-learn": B(scale=0.024),
            "tf-similarity": B(lambda_=5e-3, norm="tf", eps=0.0, margin=1e-12),
            "quadra": B(lambda_=5e-3, norm="unbiased", eps=0.0, quadra_bug=True),
            "edifice": B(lambda_=5e-3, norm="nx", eps=1e-4),
        },
        sources={
            "paper": "facebookresearch/barlowtwins (main.py, 2022 release)",
            "lightly": "lightly >= 1.5.20 lightly.loss.BarlowTwinsLoss",
            "solo-learn": "solo-learn 1.0.2 Barlow Twins method defaults",
            "tf-similarity": "tensorflow_similarity Barlow loss",
            "quadra": "quadra 2.9 quadra.losses.ssl.barlowtwins_loss, as shipped",
            "edifice": "edifice (Elixir Nx/Axon) Barlow Twins loss",
        },
        warnings={
            "quadra": "barlow/quadra reproduces quadra 2.9's bug: its barlowtwins_loss overwrites the "
            "standardised za with the standardised zb, so za is ignored (and a constant column gives NaN)",
        },
    ),
    "nt_xent": LossSpec(
        "nt_xent",
        nt_xent.TERMS,
        nt_xent.nt_xent_terms_of,
        presets={
            "paper": X(),
            "lightly": X(tau=0.5, reduction="mean", normalize="torch"),
            "solo-learn": X(tau=0.1, reduction="mean", normalize="torch"),
            "quadra": X(tau=1.0, reduction="mean", normalize="torch"),
            "tf-similarity": X(tau=0.05, reduction="sum_directions", normalize="tf"),
            "edifice": X(tau=0.5, reduction="mean", normalize="nx"),
        },
        sources={
            "paper": "google-research/simclr (objective.py)",
            "lightly": "lightly 1.6 lightly.loss.NTXentLoss",
            "solo-learn": "solo-learn 1.0.2 solo.losses.simclr_loss_func",
            "quadra": "quadra 2.9 quadra.losses.ssl.simclr_loss (exact value; quadra's own is approximate, see docs)",
            "tf-similarity": "tensorflow_similarity SimCLRLoss (mean of its per-example vector)",
            "edifice": "edifice (Elixir Nx/Axon) NT-Xent loss",
        },
        from_rows=True,
    ),
    "infonce": LossSpec(
        "infonce",
        infonce.TERMS,
        infonce.infonce_terms_of,
        presets=dict.fromkeys(FLAVORS, infonce.InfoNCEParams()),
        sources=_borrowed(
            {
                "solo-learn": "solo-learn solo.losses.mocov3_loss_func (main branch; not in the 1.0.2 wheel)",
                "paper": "solo-learn solo.losses.mocov3_loss_func defaults; facebookresearch/moco-v3 has the "
                "same 2 tau form with --moco-t 1.0 by default (set infonce.tau=1)",
            },
            "solo-learn solo.losses.mocov3_loss_func",
        ),
        from_rows=True,
    ),
    "dcl": LossSpec(
        "dcl",
        dcl.TERMS,
        dcl.dcl_terms_of,
        presets=dict.fromkeys(FLAVORS, dcl.DCLParams()),
        sources=_borrowed({"lightly": "lightly 1.6 lightly.loss.DCLLoss"}, "lightly 1.6 lightly.loss.DCLLoss"),
        from_rows=True,
    ),
    "dclw": LossSpec(
        "dclw",
        dcl.TERMS,
        dcl.dcl_terms_of,
        presets=dict.fromkeys(FLAVORS, dcl.DCLWParams()),
        sources=_borrowed({"lightly": "lightly 1.6 lightly.loss.DCLWLoss"}, "lightly 1.6 lightly.loss.DCLWLoss"),
        from_rows=True,
    ),
    # negative_cosine and byol are means of per-row cosines: accumulated per chunk (row_mean)
    "negative_cosine": LossSpec(
        "negative_cosine",
        cosine.TERMS,
        cosine.negative_cosine_terms_of,
        row_mean=True,
        presets=dict.fromkeys(FLAVORS, cosine.NegativeCosineParams()),
        sources=_borrowed(
            {
                "paper": "facebookresearch/simsiam (-cosine of one predictor/target pair)",
                "lightly": "lightly 1.6 lightly.loss.NegativeCosineSimilarity",
                "solo-learn": "solo-learn 1.0.2 solo.losses.simsiam_loss_func",
                "quadra": "quadra 2.9 quadra.losses.ssl.simsiam_loss (one of its two averaged pairs)",
                "tf-similarity": "lightly 1.6 lightly.loss.NegativeCosineSimilarity (TF Similarity's SimSiamLoss, "
                "0.5 x projection + margin, is not offered)",
            },
            "lightly 1.6 lightly.loss.NegativeCosineSimilarity",
            "parameter-free, the same under every flavor",
        ),
        from_rows=True,
    ),
    "byol": LossSpec(
        "byol",
        cosine.TERMS,
        cosine.byol_terms_of,
        row_mean=True,
        presets=dict.fromkeys(FLAVORS, cosine.BYOLParams()),
        sources=_borrowed(
            {
                "paper": "BYOL paper Eq. 2 (google-deepmind/byol regression loss ||n(p) - n(z)||^2 = 2 - 2 cos)",
                "solo-learn": "solo-learn 1.0.2 solo.losses.byol_loss_func",
                "quadra": "quadra 2.9 quadra.losses.ssl.byol_regression_loss",
                "lightly": "2 - 2 cos as BYOL's paper (lightly's BYOL trains with NegativeCosineSimilarity: "
                "see negative_cosine)",
            },
            "BYOL regression loss 2 - 2 cos (paper, solo-learn, quadra)",
            "parameter-free, the same under every flavor",
        ),
        from_rows=True,
    ),
    "hypersphere": LossSpec(
        "hypersphere",
        hypersphere.TERMS,
        hypersphere.hypersphere_terms_of,
        presets={
            **dict.fromkeys(FLAVORS, hypersphere.HypersphereParams()),
            "quadra": hypersphere.HypersphereParams(t=2.0),
        },
        sources=_borrowed(
            {
                "lightly": "lightly 1.6 lightly.loss.HypersphereLoss",
                "paper": "lightly 1.6 lightly.loss.HypersphereLoss defaults, t = 1 (the authors' "
                "SsnL/align_uniform code uses t = 2: set hypersphere.t=2)",
                "quadra": "quadra 2.9 quadra.losses.ssl.hyperspherical (align_loss + mean of two uniform_loss, "
                "t = 2) on the L2-normalised embeddings of its hyperspherical models",
            },
            "lightly 1.6 lightly.loss.HypersphereLoss",
        ),
        from_rows=True,
    ),
    "mmcr": LossSpec(
        "mmcr",
        mmcr.TERMS,
        mmcr.mmcr_terms_of,
        presets=dict.fromkeys(FLAVORS, mmcr.MMCRParams()),
        sources=_borrowed(
            {"lightly": "lightly 1.6 lightly.loss.MMCRLoss with one view per side"},
            "lightly 1.6 lightly.loss.MMCRLoss with one view per side",
        ),
        from_rows=True,
    ),
}


def loss_key(name: str) -> str:
    """The JSON key of a loss named on the CLI (`nt-xent` and `nt_xent` both work)."""
    key = name.strip().lower().replace("-", "_")
    if key not in LOSSES:
        raise UsageError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)} or 'all'")
    return key


def check_flavor(name: str) -> str:
    """The flavor's name as the JSON spells it (`LIGHTLY`, `solo_learn` work), or 'all'."""
    key = name.strip().lower().replace("_", "-")
    if key not in (*FLAVORS, "all"):
        raise UsageError(f"unknown flavor {name!r}; choose from {', '.join(FLAVORS)} or 'all'")
    return key


def param_names(params: Any) -> dict[str, str]:
    """JSON / --set name -> dataclass field (`lambda` -> `lambda_`)."""
    return {f.name.rstrip("_"): f.name for f in dataclasses.fields(params)}


def params_dict(params: Any) -> dict[str, Any]:
    """The effective parameters under their public names, for JSON and tables."""
    return {public: getattr(params, field) for public, field in param_names(params).items()}


def resolve_params(loss: str, flavor: str, overrides: Mapping[str, str] | None = None) -> Any:
    """The flavor's preset of `loss` with `--set` overrides (strings, parsed by the field's type)."""
    params = LOSSES[loss].presets[flavor]
    if not overrides:
        return params
    names = param_names(params)
    changes: dict[str, Any] = {}
    for name, raw in overrides.items():
        if name not in names:
            has = f"{loss} has {', '.join(names)}" if names else f"{loss} has no parameters"
            raise UsageError(f"--set {loss}.{name}: unknown parameter; {has}")
        current = getattr(params, names[name])
        changes[names[name]] = _parse_value(f"{loss}.{name}", raw, current, params, names[name])
    return dataclasses.replace(params, **changes)


def _parse_value(label: str, raw: str, current: Any, params: Any, field: str) -> Any:
    choices = _choices(params, field)
    if isinstance(current, bool):
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise UsageError(f"--set {label}={raw}: expected true or false")
    if choices:
        value: Any = int(raw) if isinstance(current, int) and raw.strip().lstrip("-").isdigit() else raw.strip()
        if value not in choices:
            raise UsageError(f"--set {label}={raw}: expected one of {', '.join(map(str, choices))}")
        return value
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--set {label}={raw}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"--set {label}={raw}: expected a finite number")
    if field in ("tau", "sigma", "t") and value <= 0:
        raise UsageError(f"--set {label}={raw}: must be > 0")
    if field == "eps" and value < 0:
        raise UsageError(f"--set {label}={raw}: must be >= 0")
    return value


def _choices(params: Any, field: str) -> tuple[Any, ...]:
    """The allowed values of a Literal-typed field (empty for free numbers)."""
    from typing import get_args, get_type_hints

    hint = get_type_hints(type(params), include_extras=False)[field]
    args = get_args(hint)
    return args if args and all(isinstance(a, (str, int)) for a in args) and hint is not bool else ()
