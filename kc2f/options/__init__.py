"""Typed option sets: the fields, parsing and checks behind `RunConfig` and each family's options.

An `OptionSet` is a frozen dataclass whose fields are declared with `option`
(type, nullability, choices, bounds and help text in one place). `RunConfig`
(the run's options) and every model family's options dataclass (a
`ModelOptions`, e.g. the AST's `AstOptions`) are option sets, so YAML files,
`--set key=value`, `config.json` and the command line's help all read one
declaration. This package imports nothing heavier than the standard library
and PyYAML: the command line builds its options from it before Keras loads.
"""

from kc2f.options.model_options import ModelOptions
from kc2f.options.option_set import OptionSet, option, parse_ints

__all__ = ["ModelOptions", "OptionSet", "option", "parse_ints"]
