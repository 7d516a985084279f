"""The Mixtral export's config carries the experts' architecture keys as mergekit-moe 0.1.5 does.

The expected dicts are what mergekit-moe 0.1.5 (transformers 5.25) wrote for the same base
``config.json`` (``MixtralMoE()._generate_config(AutoConfig.from_pretrained(d), 4, 0, 2)`` with
``torch_dtype = "bfloat16"``, then ``save_pretrained``; ``transformers_version`` left out), recorded
with /tmp/h5/mkmoe_cfg2.py of session 6 (docs/notes/issue-27.md).
"""

import json
from types import SimpleNamespace

import pytest

from glue.mix.build import mixtral_config

# an older-format Llama config with non-default architecture keys (rope_theta at the top level)
OLD_LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 64, "hidden_size": 32,
             "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 128, "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "bos_token_id": 1,
             "eos_token_id": 2, "pad_token_id": 0, "attention_bias": True, "mlp_bias": True, "pretraining_tp": 2,
             "rope_theta": 500000.0, "initializer_range": 0.05, "hidden_act": "silu", "torch_dtype": "float32",
             "transformers_version": "4.44.0"}
MK_OLD_LLAMA = {"architectures": ["MixtralForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
                "bos_token_id": 1, "dtype": "bfloat16", "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu",
                "hidden_size": 32, "initializer_range": 0.05, "intermediate_size": 64, "max_position_embeddings": 128,
                "mlp_bias": True, "model_type": "mixtral", "num_attention_heads": 4, "num_experts_per_tok": 2,
                "num_hidden_layers": 2, "num_key_value_heads": 2, "num_local_experts": 4,
                "output_router_logits": False, "pad_token_id": 0, "pretraining_tp": 2, "rms_norm_eps": 1e-06,
                "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "router_aux_loss_coef": 0.001,
                "router_jitter_noise": 0.0, "sliding_window": None, "tie_word_embeddings": False, "use_cache": True,
                "vocab_size": 64}
# SmolLM2-135M's shape (GQA, tied embeddings), transformers-5 format
SMOL = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 49152, "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "head_dim": 64, "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "attention_bias": False, "mlp_bias": False,
        "pretraining_tp": 1, "rope_parameters": {"rope_theta": 100000, "rope_type": "default"},
        "initializer_range": 0.02, "hidden_act": "silu", "use_cache": True, "dtype": "bfloat16",
        "transformers_version": "5.24.0"}
MK_SMOL = {"architectures": ["MixtralForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
           "bos_token_id": 1, "dtype": "bfloat16", "eos_token_id": 2, "head_dim": 64, "hidden_act": "silu",
           "hidden_size": 576, "initializer_range": 0.02, "intermediate_size": 1536, "max_position_embeddings": 8192,
           "mlp_bias": False, "model_type": "mixtral", "num_attention_heads": 9, "num_experts_per_tok": 2,
           "num_hidden_layers": 30, "num_key_value_heads": 3, "num_local_experts": 4, "output_router_logits": False,
           "pad_token_id": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
           "rope_parameters": {"rope_theta": 100000, "rope_type": "default"}, "router_aux_loss_coef": 0.001,
           "router_jitter_noise": 0.0, "sliding_window": None, "tie_word_embeddings": True, "use_cache": True,
           "vocab_size": 49152}


@pytest.mark.parametrize("base, expected", [(OLD_LLAMA, MK_OLD_LLAMA), (SMOL, MK_SMOL)], ids=["old-llama", "smollm2"])
def test_mixtral_config_is_mergekit_moes(tmp_path, base, expected):
    mix = SimpleNamespace(experts=[None] * 4, top_k=2, dtype="bfloat16", config=dict(base))
    mixtral_config(mix).save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    written.pop("transformers_version")
    assert written == expected
