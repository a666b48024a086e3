"""`--model ast`: the Audio Spectrogram Transformer (https://arxiv.org/abs/2104.01778) with the
paper's five temporal-compression front-ends.

- `AstBackbone`: the encoder (front end, patches, position embedding, blocks) the AST's task
  models subclass: `AudioSpectrogramTransformer` (classifier) and SSAST's `SsastPretrainer`.
- `AudioSpectrogramTransformer`, `AST_METHODS`, `front_end`: the classifier and its front ends.
- `AstEncoderOptions`, `AstOptions`: the encoder's and the classifier's options (`model_options`).
- `AST_PRESETS`: its sizes (DeiT tiny/small/base widths).
- `ast_flops`: its closed-form FLOPs per sample.
- `transfer_weights`: the phase switch's weight transfer (position embedding and patch kernel resized).
- `initialize_from`: pretrained ViT/DeiT, AST and kc2f checkpoints on local disk.
- `AstFamily`: the family object that ties them to kc2f's trainer.
"""

from kc2f.families.ast.ast_backbone import AstBackbone
from kc2f.families.ast.ast_encoder_options import AstEncoderOptions
from kc2f.families.ast.ast_family import AstFamily
from kc2f.families.ast.ast_options import AstOptions
from kc2f.families.ast.ast_presets import AST_PRESETS
from kc2f.families.ast.ast_pretrained import initialize_from, is_pretraining_checkpoint
from kc2f.families.ast.ast_transfer import transfer_weights
from kc2f.families.ast.audio_spectrogram_transformer import AudioSpectrogramTransformer
from kc2f.families.ast.front_end import AST_METHODS, FrontEnd, front_end

__all__ = ["AST_METHODS", "AST_PRESETS", "AstBackbone", "AstEncoderOptions", "AstFamily", "AstOptions",
           "AudioSpectrogramTransformer", "FrontEnd", "front_end", "initialize_from", "is_pretraining_checkpoint",
           "transfer_weights"]
