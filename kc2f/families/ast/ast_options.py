"""`AstOptions`: the AST classifier's options (`--model ast`)."""

import dataclasses

from kc2f.families.ast.ast_encoder_options import AstEncoderOptions
from kc2f.options import option


@dataclasses.dataclass(frozen=True)
class AstOptions(AstEncoderOptions):
    """The encoder's options (`AstEncoderOptions`) and what the classifier's head reads."""

    pooling: str = option(None, "what the head reads: prefix (the AST's cls/dist tokens) | patch (SSAST's "
                          "ft_avgtok: the mean of the patch tokens, the prefix tokens kept in the sequence) "
                          "(None: patch when --init is an SSAST pretraining run, else prefix)", str, nullable=True,
                          choices=("prefix", "patch"))
