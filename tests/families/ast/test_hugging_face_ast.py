"""`--init` with a Hugging Face AST checkpoint (`ASTForAudioClassification` names).

The state dict is made here from an official-AST one (`tests/weights/test_pretrained.py`'s
`ast_state`) by renaming it the way `transformers` names the same network, splitting
`attn.qkv` into query, key and value: the two files hold the same weights, so the
initialised models must give identical logits.
"""

import numpy as np
import pytest

from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.families.ast.ast_pretrained import hugging_face_ast_to_ast, initialize_from

from tests.families.ast.test_ast_pretrained import AST_MODEL, DEPTH, _numpy, _waveforms, _weights, ast_state, save

BLOCK_NAMES = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense", "norm2": "layernorm_after",
               "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}


def hugging_face_state(state, prefix="audio_spectrogram_transformer."):
    """The official AST state dict under `transformers`' names."""
    v = "module.v."
    hf = {
        prefix + "embeddings.cls_token": state[v + "cls_token"],
        prefix + "embeddings.distillation_token": state[v + "dist_token"],
        prefix + "embeddings.position_embeddings": state[v + "pos_embed"],
        prefix + "embeddings.patch_embeddings.projection.weight": state[v + "patch_embed.proj.weight"],
        prefix + "embeddings.patch_embeddings.projection.bias": state[v + "patch_embed.proj.bias"],
        prefix + "layernorm.weight": state[v + "norm.weight"],
        prefix + "layernorm.bias": state[v + "norm.bias"],
        "classifier.layernorm.weight": state["module.mlp_head.0.weight"],
        "classifier.layernorm.bias": state["module.mlp_head.0.bias"],
        "classifier.dense.weight": state["module.mlp_head.1.weight"],
        "classifier.dense.bias": state["module.mlp_head.1.bias"],
    }
    for i in range(DEPTH):
        block, layer = f"{v}blocks.{i}.", f"{prefix}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, value = np.split(state[f"{block}attn.qkv.{kind}"], 3, axis=0)
            for name, part in (("query", q), ("key", k), ("value", value)):
                hf[f"{layer}attention.attention.{name}.{kind}"] = part
            for ast_name, hf_name in BLOCK_NAMES.items():
                hf[f"{layer}{hf_name}.{kind}"] = state[f"{block}{ast_name}.{kind}"]
    return hf


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_hugging_face_names_give_the_same_model_as_the_original(tmp_path, fmt):
    state = ast_state(seed=5)
    original = AudioSpectrogramTransformer(num_classes=7, **AST_MODEL)
    from_hf = AudioSpectrogramTransformer(num_classes=7, **AST_MODEL)
    initialize_from(original, save(state, tmp_path, fmt, name="ast"))
    report = initialize_from(from_hf, save(hugging_face_state(state), tmp_path, fmt, name="hf"))
    for path, value in _weights(original).items():
        np.testing.assert_array_equal(_weights(from_hf)[path], value, err_msg=path)
    x = _waveforms(16000, seconds=0.6)
    np.testing.assert_array_equal(_numpy(from_hf(x)), _numpy(original(x)))
    assert report.paths("initialised") == [] and report.unused == []
    assert any("Hugging Face" in note for note in report.notes)
    assert report.origins["block_1/qkv/kernel"] == "module.v.blocks.1.attn.qkv.weight"


def test_bare_model_names_and_an_incomplete_attention(tmp_path):
    state = ast_state(seed=6)
    bare = {k: v for k, v in hugging_face_state(state, prefix="").items() if not k.startswith("classifier.")}
    renamed = hugging_face_ast_to_ast(bare)
    assert set(renamed) == {k for k in state if k.startswith("module.v.") and ".head" not in k}
    np.testing.assert_array_equal(renamed["module.v.blocks.0.attn.qkv.weight"],
                                  state["module.v.blocks.0.attn.qkv.weight"])
    del bare["encoder.layer.1.attention.attention.key.bias"]
    with pytest.raises(ValueError, match="block 1 lacks attention.attention.key.bias"):
        hugging_face_ast_to_ast(bare)
