"""What every model family shares beyond its layers: presets on disk and FLOPs accounting.

- `preset_io`: keras-hub-style preset directories (`save_to_preset`, `load_preset`).
- `flops_breakdown`: the per-element FLOP prices and `FlopsBreakdown`, the by-part
  count every family's closed-form FLOPs return.

The models themselves live with their families: `kc2f.families.ast`,
`kc2f.families.htsat`, `kc2f.families.ssast`.
"""

from kc2f.models.flops_breakdown import FlopsBreakdown
from kc2f.models.preset_io import is_preset_path, load_preset, save_to_preset

__all__ = ["FlopsBreakdown", "is_preset_path", "load_preset", "save_to_preset"]
