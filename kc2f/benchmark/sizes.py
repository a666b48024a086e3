"""Model sizes of the benchmark rows: the family's presets by name, or one custom AST-style size."""

import dataclasses

from kc2f.benchmark.errors import BenchError
from kc2f.families import default_family, get_family


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Size of a benchmark row: a preset of the row's family (`name`; the widths are the preset's
    where it has them, else `None`) or `custom` (width, depth and heads of a ViT-style model)."""

    name: str
    hidden_dim: int
    depth: int
    num_heads: int


def model_sizes(names=("base",), hidden_dim=None, depth=None, num_heads=None, model=None):
    """The sizes to benchmark: presets of the family `model` (None: the default family) by name, or
    one custom size.

    A custom size is used when any of `hidden_dim`, `depth`, `num_heads` is
    given; the missing ones default to 12 blocks and `hidden_dim // 64` heads
    (at least 1), as ViT.
    """
    if hidden_dim is not None or depth is not None or num_heads is not None:
        if hidden_dim is None:
            raise BenchError("A custom size needs hidden_dim. Received: hidden_dim=None")
        depth = 12 if depth is None else depth
        num_heads = max(1, hidden_dim // 64) if num_heads is None else num_heads
        if hidden_dim % num_heads:
            raise BenchError(
                f"hidden_dim must be divisible by num_heads. Received: hidden_dim={hidden_dim}, "
                f"num_heads={num_heads}"
            )
        return [ModelSize("custom", hidden_dim, depth, num_heads)]
    try:
        family = default_family() if model is None else get_family(model)
    except ValueError as error:
        raise BenchError(str(error)) from None
    sizes = []
    for name in names:
        if name not in family.presets:
            raise BenchError(f"size must be one of {sorted(family.presets)} for model '{family.name}'. "
                             f"Received: size={name!r}")
        preset = family.presets[name]
        sizes.append(ModelSize(name, preset.get("hidden_dim"), preset.get("depth"), preset.get("num_heads")))
    return sizes
