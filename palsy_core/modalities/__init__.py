"""The per-frame views the model reads: one file per modality, each with a ``SPEC``
(:class:`palsy_core.modalities.base.ModalitySpec`), found here by scanning this package.

Adding a modality is one new file here (its ``SPEC``) plus its entry in
``palsy_core.registry.MODALITIES`` (name and description for people); the pipeline, the cache,
mirroring, model inputs and the encoders are generic over the specs.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from palsy_core.registry import MODALITY_KEYS


@cache
def _specs() -> dict:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if spec is not None:
            found[spec.key] = spec
    missing, extra = set(MODALITY_KEYS) - set(found), set(found) - set(MODALITY_KEYS)
    if missing or extra:
        raise RuntimeError(f"modality files and registry disagree: no file for "
                           f"{sorted(missing)}, no registry entry for {sorted(extra)}")
    return {k: found[k] for k in MODALITY_KEYS}


def spec(key: str):
    """The :class:`~palsy_core.modalities.base.ModalitySpec` of one modality."""
    return _specs()[key]


def specs() -> dict:
    """Every modality's spec, in registry order."""
    return dict(_specs())
