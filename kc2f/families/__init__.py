"""Model families: the seam through which kc2f trains any audio model coarse-to-fine.

The trainer, the benchmark, evaluation at another factor, export, inference and
the checkpoint converter never name a model class; they go through the run's
family (`get_family(config.model)`) or a loaded model's (`family_of(model)`).
Each family is one folder holding everything of its own: model, layers only it
uses, presets, FLOPs, weight transfer, checkpoint conversion and the family
object: `ast/` (the default family, `default_family`), `htsat/` and `ssast/`
(SSAST pretraining, `pretraining_family`), all registered here.
`register_family` adds a user's own, and an installed package's are found
through the `kc2f.families` entry-point group (`discover_families`).

This package sits above `kc2f.layers`, `kc2f.models` and `kc2f.weights`: what
the families share (layers, preset directories, FLOPs accounting, resampling,
checkpoint readers). No module outside it imports a family's folder
(`tests/test_layering.py`).
"""

from kc2f.families.ast.ast_family import AstFamily
from kc2f.families.htsat.htsat_family import HtsatFamily
from kc2f.families.ssast.ssast_family import SsastFamily
from kc2f.families.model_family import (
    ENTRY_POINT_GROUP,
    ModelFamily,
    default_family,
    discover_families,
    family_names,
    family_of,
    get_family,
    load_model,
    pretraining_family,
    register_family,
)

register_family(AstFamily(), default=True)
register_family(HtsatFamily())
register_family(SsastFamily())

__all__ = ["AstFamily", "ENTRY_POINT_GROUP", "HtsatFamily", "SsastFamily", "ModelFamily", "default_family",
           "discover_families", "family_names", "family_of", "get_family", "load_model", "pretraining_family",
           "register_family"]
