"""Model families: the seam through which kc2f trains any audio model coarse-to-fine.

The trainer, the benchmark, evaluation at another factor, export, inference and
the checkpoint converter never name a model class; they go through the run's
family (`get_family(config.model)`) or a loaded model's (`family_of(model)`).
`ast`, `htsat` and `ssast` (SSAST pretraining) are registered here; `register_family` adds a user's own,
and an installed package's are found through the `kc2f.families` entry-point group (`discover_families`).

This package sits above `kc2f.models` and `kc2f.weights` because a family
needs both: the Keras model it builds and the weight transfer and pretrained
conversion that go with it.
"""

from kc2f.families.ast_family import AstFamily
from kc2f.families.htsat_family import HtsatFamily
from kc2f.families.ssast_family import SsastFamily
from kc2f.families.model_family import (
    ENTRY_POINT_GROUP,
    ModelFamily,
    discover_families,
    family_names,
    family_of,
    get_family,
    load_model,
    register_family,
)

register_family(AstFamily())
register_family(HtsatFamily())
register_family(SsastFamily())

__all__ = ["AstFamily", "ENTRY_POINT_GROUP", "HtsatFamily", "SsastFamily", "ModelFamily", "discover_families",
           "family_names", "family_of", "get_family", "load_model", "register_family"]
