"""FLOPs accounting shared by the model families: the per-element prices and `FlopsBreakdown`.

The conventions (docs/method.md#flops): a multiply-add is 2 FLOPs; element-wise
work is counted as XLA's `HloCostAnalysis` counts the Keras ops, one FLOP per
arithmetic operation per element, transcendental functions left out.
"""

import dataclasses


# Element-wise FLOPs per element, as XLA's cost analysis counts the Keras ops.
LAYER_NORM_FLOPS = 8  # mean and variance (2 sums, subtract, square), normalise, scale, shift
GELU_FLOPS = 4  # exact GELU 0.5·x·(1 + erf(x/√2)): the erf itself is a transcendental
SOFTMAX_FLOPS = 5  # per attention score: 1/√d scale, max, subtract, sum, divide (exp: transcendental)


@dataclasses.dataclass(frozen=True)
class FlopsBreakdown:
    """Forward FLOPs of one sample, by part of the network.

    Attributes:
        fbank: Kaldi log-mel filter bank from the waveform.
        pooling: time pooling of the `maxpool` / `avgpool` front-ends.
        patch_embedding: patch projection and its bias.
        attention: `4·N²·D` per block (`QKᵀ` and `AV`) and the softmax.
        projections: qkv and output projections with biases (`8·N·D²` per block).
        mlp: the two MLP matmuls with biases (`4·N·D·F` per block).
        norms_and_other: LayerNorms, GELU, residual adds, the position
            embedding add and the final LayerNorm.
        head: prefix-token mean, head LayerNorm and the classifier.
    """

    fbank: float
    pooling: float
    patch_embedding: float
    attention: float
    projections: float
    mlp: float
    norms_and_other: float
    head: float

    @property
    def forward(self):
        """Total forward FLOPs of one sample."""
        return float(sum(dataclasses.astuple(self)))

    @property
    def front_end(self):
        """Waveform → spectrogram (fbank and pooling): no weights, no gradient."""
        return self.fbank + self.pooling

    @property
    def network(self):
        """Everything from the patch embedding on: the part that is trained."""
        return self.forward - self.front_end

    @property
    def training(self):
        """FLOPs of one sample in a training step; see `training_flops_per_sample`."""
        after_patches = self.network - self.patch_embedding
        return self.front_end + 2.0 * self.patch_embedding + 3.0 * after_patches
