"""SSL losses as pure, differentiable torch functions, each term on its own.

The same functions the engine runs per batch; flavors (`sslcheck.losses.flavors`) are presets of
their parameters.
"""

from sslcheck.losses.barlow_loss import BarlowParams, barlow_terms, barlow_twins
from sslcheck.losses.cosine_loss import BYOLParams, NegativeCosineParams, byol, negative_cosine
from sslcheck.losses.dcl_loss import DCLParams, DCLWParams, dcl, dcl_terms, dclw
from sslcheck.losses.hypersphere_loss import HypersphereParams, hypersphere, hypersphere_terms
from sslcheck.losses.infonce_loss import InfoNCEParams, infonce
from sslcheck.losses.mmcr_loss import MMCRParams, mmcr, mmcr_terms
from sslcheck.losses.nt_xent_loss import NTXentParams, nt_xent
from sslcheck.losses.vicreg_loss import VICRegParams, vicreg, vicreg_terms

__all__ = [
    "BYOLParams",
    "BarlowParams",
    "DCLParams",
    "DCLWParams",
    "HypersphereParams",
    "InfoNCEParams",
    "MMCRParams",
    "NTXentParams",
    "NegativeCosineParams",
    "VICRegParams",
    "barlow_terms",
    "barlow_twins",
    "byol",
    "dcl",
    "dcl_terms",
    "dclw",
    "hypersphere",
    "hypersphere_terms",
    "infonce",
    "mmcr",
    "mmcr_terms",
    "negative_cosine",
    "nt_xent",
    "vicreg",
    "vicreg_terms",
]
