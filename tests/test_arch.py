"""glue.arch: the one architecture-compatibility rule of merge planning, clustering, selection and mixture."""

from glue.arch import ARCH_FIELDS, ONE_CONFIG_FIELDS, architecture_key, class_key, describe_architecture, differences, group_by_architecture, mismatch

LLAMA = {"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 2}


def test_missing_kv_heads_means_multi_head_attention():
    assert architecture_key(LLAMA) == architecture_key({**LLAMA, "num_key_value_heads": 2})
    assert architecture_key(LLAMA) != architecture_key({**LLAMA, "num_key_value_heads": 1})
    assert describe_architecture(architecture_key(LLAMA)) == "LlamaForCausalLM h32 i128 L2 H2/2"


def test_mismatch_names_both_models_and_every_differing_field():
    a, deep = architecture_key(LLAMA), architecture_key({**LLAMA, "num_hidden_layers": 3, "hidden_size": 64})
    assert mismatch(a, a, "model 'a'", "model 'b'") is None
    assert mismatch(a, deep, "model 'a'", "model 'd'") == ("model 'a' and model 'd' differ in hidden_size (32 vs 64), "
                                                           "num_hidden_layers (2 vs 3)")
    qwen = architecture_key({**LLAMA, "architectures": ["Qwen2ForCausalLM"]})
    assert mismatch(a, qwen, "base 'b'", "model 'q'") == "base 'b' is LlamaForCausalLM, model 'q' is Qwen2ForCausalLM"


def test_a_class_name_alone_checks_the_class_only():
    """An in-memory state dict knows its class at most: unknown fields never count as a difference."""
    assert mismatch(class_key("LlamaForCausalLM"), architecture_key(LLAMA), "a", "b") is None
    assert differences(class_key("LlamaForCausalLM"), class_key("Qwen2ForCausalLM"))[0][0] == "architectures"
    assert mismatch(None, architecture_key(LLAMA), "a", "b") is None and class_key(None) is None


def test_groups_keep_first_appearance_order():
    cfgs = {"a": LLAMA, "q": {**LLAMA, "architectures": ["Qwen2ForCausalLM"]}, "b": LLAMA}
    assert group_by_architecture(cfgs) == [["a", "b"], ["q"]]


def test_one_config_key_normalises_spellings_and_the_merge_key_ignores_it():
    """head_dim derived = explicit; rope in transformers-5 and legacy spelling agree; rope_theta matters only for
    the stricter key (a mixture's), never for the merge/cluster key."""
    strict = ARCH_FIELDS + ONE_CONFIG_FIELDS
    new = {**LLAMA, "head_dim": 16, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}
    legacy = {**LLAMA, "rope_theta": 10000.0, "rope_scaling": None}
    assert architecture_key(new, strict) == architecture_key(legacy, strict)
    assert dict(architecture_key(legacy, strict))["rope"] == "rope_theta=10000.0 rope_type=default"
    long = {**LLAMA, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "linear", "factor": 4.0}}
    assert mismatch(architecture_key(new, strict), architecture_key(long, strict), "a", "b") == (
        "a and b differ in rope (rope_theta=10000.0 rope_type=default vs rope_theta=10000.0 rope_type=linear factor=4.0)")
    assert architecture_key(new) == architecture_key(long) == architecture_key(LLAMA)
    assert mismatch(architecture_key(LLAMA, strict), architecture_key(long, strict), "a", "b") is None  # unknown rope
