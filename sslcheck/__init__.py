"""sslcheck: is my self-supervised representation healthy?

Every term of the standard SSL objectives in each library's numeric convention, collapse
diagnostics, and CI gates, computed in one memory-flat pass over two views za, zb: [N, D].

    >>> from sslcheck.losses import vicreg, barlow_twins, nt_xent     # differentiable torch losses
    >>> from sslcheck import evaluate_files                            # the one-pass evaluation
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "evaluate", "evaluate_files"]


def __getattr__(name: str) -> Any:
    # Lazy: `sslcheck --help` must not import torch.
    if name in ("Settings", "evaluate", "evaluate_files"):
        from sslcheck import engine

        return getattr(engine, name)
    raise AttributeError(name)
