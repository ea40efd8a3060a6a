"""Load the real SSL libraries (lightly, solo-learn, quadra) as test oracles.

They are installed without their dependencies (spec/losses.md, last paragraph), so:

- solo-learn's and quadra's loss files are loaded by path, skipping their package `__init__`s
  (which import Lightning, Hydra, timm, ...);
- `import lightly.loss` imports torchvision, and PyPI's torchvision does not load beside the
  CPU torch wheel used here. While lightly is imported, and only then, a meta-path finder answers
  every `torchvision.*` import with an empty stand-in module (lower-case attributes are further
  stand-in modules, capitalised ones empty classes). It is installed only when torchvision is
  truly absent, and removed again, with its modules, as soon as the import is done.

Every loader returns None when its library cannot be loaded; tests skip with the reason kept in
`why_not(name)`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FAILURES: dict[str, str] = {}
_CACHE: dict[str, Any] = {}


class _StandInModule(types.ModuleType):
    """An empty module: lower-case attributes are submodules, capitalised ones empty classes."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name[:1].isupper():
            cls = type(name, (), {"__module__": self.__name__})
            setattr(self, name, cls)
            return cls
        return importlib.import_module(f"{self.__name__}.{name}")


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `torchvision` and every `torchvision.*` import with a `_StandInModule`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__name__ == "torchvision":
            module.__version__ = "0.0.0+stand-in"  # type: ignore[attr-defined]


@contextlib.contextmanager
def torchvision_stand_in() -> Iterator[None]:
    """Within the block, `import torchvision...` yields stand-ins, unless torchvision is installed."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        yield
        return
    finder = _TorchvisionStandIn()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            if isinstance(sys.modules[name], _StandInModule):
                del sys.modules[name]


def why_not(name: str) -> str:
    return _FAILURES.get(name, f"{name} could not be loaded")


def _site_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def _locate(package: str, *parts: str) -> Path:
    path = _site_file(package, *parts)
    if path is None:
        raise ImportError(f"{package} is not installed (no {'/'.join(parts)})")
    return path


def _load_by_path(package: str, *parts: str, path: Path | None = None) -> types.ModuleType:
    """Execute one source file of an installed package as a standalone module."""
    path = path or _locate(package, *parts)
    name = f"_sslcheck_oracle_{package}_{'_'.join(p.removesuffix('.py') for p in parts)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cached(name: str, load: Any) -> Any:
    if name not in _CACHE:
        try:
            _CACHE[name] = load()
        except Exception as err:
            _FAILURES[name] = f"{name} cannot be imported: {type(err).__name__}: {err}"
            _CACHE[name] = None
    return _CACHE[name]


def lightly_loss() -> types.ModuleType | None:
    """`lightly.loss` (lightly 1.6), imported beside a torchvision stand-in if needed."""

    def load() -> types.ModuleType:
        with torchvision_stand_in():
            return importlib.import_module("lightly.loss")

    return _cached("lightly", load)


def solo_losses() -> types.SimpleNamespace | None:
    """solo-learn 1.0.2's vicreg, barlow and simclr loss files, loaded by path."""

    def load() -> types.SimpleNamespace:
        return types.SimpleNamespace(
            vicreg=_load_by_path("solo", "losses", "vicreg.py"),
            barlow=_load_by_path("solo", "losses", "barlow.py"),
            simclr=_load_by_path("solo", "losses", "simclr.py"),
        )

    return _cached("solo-learn", load)


def quadra_losses() -> types.SimpleNamespace | None:
    """quadra 2.9's vicreg, barlowtwins and simclr loss files, loaded by path.

    simclr.py imports `quadra.utils.utils.AllGatherSyncFunction` (used only under
    torch.distributed), whose module pulls in Hydra and more: a stub stands in while it loads.
    """

    def load() -> types.SimpleNamespace:
        simclr_path = _locate("quadra", "losses", "ssl", "simclr.py")
        stub_names = ("quadra", "quadra.utils", "quadra.utils.utils")
        saved = {name: sys.modules.get(name) for name in stub_names}
        stubs = {name: types.ModuleType(name) for name in stub_names}
        stubs["quadra.utils.utils"].AllGatherSyncFunction = object  # type: ignore[attr-defined]
        sys.modules.update(stubs)
        try:
            simclr = _load_by_path("quadra", "losses", "ssl", "simclr.py", path=simclr_path)
        finally:
            for name, old in saved.items():
                if old is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = old
        return types.SimpleNamespace(
            vicreg=_load_by_path("quadra", "losses", "ssl", "vicreg.py"),
            barlowtwins=_load_by_path("quadra", "losses", "ssl", "barlowtwins.py"),
            simclr=simclr,
        )

    return _cached("quadra", load)
