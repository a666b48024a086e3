"""The base of a model family's options dataclass."""

import dataclasses

from kc2f.options.option_set import OptionSet


@dataclasses.dataclass(frozen=True)
class ModelOptions(OptionSet):
    """A model family's own options: subclass it as a frozen dataclass of `option` fields.

    A family names its class as `ModelFamily.options_class`; a run holds an
    instance as `RunConfig.model_options` (YAML and `config.json`:
    `model_options:`; `--set NAME=VALUE` or `--set model_options.NAME=VALUE`).
    This base has no options: a family without any uses it as it is.

        @dataclasses.dataclass(frozen=True)
        class TinyOptions(ModelOptions):
            width: int = option(32, "channels of the convolution", int, at_least=1)
    """
