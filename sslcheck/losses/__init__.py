"""SSL losses as pure, differentiable torch functions, each term on its own.

The same functions the engine runs per batch; flavors (`sslcheck.losses.flavors`) are presets of
their parameters.
"""

from sslcheck.losses.barlow_loss import BarlowParams, barlow_terms, barlow_twins
from sslcheck.losses.nt_xent_loss import NTXentParams, nt_xent
from sslcheck.losses.vicreg_loss import VICRegParams, vicreg, vicreg_terms

__all__ = [
    "BarlowParams",
    "NTXentParams",
    "VICRegParams",
    "barlow_terms",
    "barlow_twins",
    "nt_xent",
    "vicreg",
    "vicreg_terms",
]
