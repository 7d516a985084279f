"""The real zoos of Model-GLUE (Which2 ... Which16) as data.

Lists from the paper's code (see shared reference digest, section 1): base model
``meta-llama/Llama-2-7b-hf``; Which16 order from ``scripts/run_clustering.sh``; Which12 from
``merging/evolutionary_merge.py``; Which8 and Which4 ("domain") from ``linear_which{4,8}.py``;
Which4 ("chat") and Which2 from the mixture configs. The zoos nest:
Which2 ⊂ Which4 ⊂ Which8 ⊂ Which12 ⊂ Which16 and Which4-domain ⊂ Which8.
"""

from __future__ import annotations

from glue.zoo.spec import Member, Zoo

# the benchmarks of the real zoos; their lm-eval names, metrics and few-shot settings: glue.eval.tasks
REAL_TASKS = ("arc_challenge", "winogrande", "mmlu", "gsm8k")
CODE_TASKS = ("mbpp", "humaneval")  # added only with --allow-code-execution (they run model-written code)

BASE = Member("Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf", "llama2", role="base", note="base of the Llama-2 family")

_L2 = "LlamaForCausalLM"
_WHICH16 = [
    Member("Synthia-7B-v1.2", "migtissera/Synthia-7B-v1.2", "llama2", _L2),
    Member("OpenHermes-7B", "teknium/OpenHermes-7B", "llama2", _L2),
    Member("Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-chat-hf", "llama2", _L2),
    Member("vicuna-7b-v1.5", "lmsys/vicuna-7b-v1.5", "llama2", _L2),
    Member("Llama-2-7b-evolcodealpaca", "neuralmagic/Llama-2-7b-evolcodealpaca", "llama2", _L2),
    Member("pygmalion-2-7b", "PygmalionAI/pygmalion-2-7b", "llama2", _L2),
    Member("BeingWell_llama2_7b", "Severus27/BeingWell_llama2_7b", "llama2", _L2),
    Member("MetaMath-7B-V1.0", "meta-math/MetaMath-7B-V1.0", "llama2", _L2),
    Member("Platypus2-7B", "garage-bAInd/Platypus2-7B", "llama2", _L2),
    Member("GOAT-7B-Community", "GOAT-AI/GOAT-7B-Community", "llama2", _L2),
    Member("Llama-2-7b-WikiChat-fused", "stanford-oval/Llama-2-7b-WikiChat-fused", "llama2", _L2),
    Member("dolphin-llama2-7b", "cognitivecomputations/dolphin-llama2-7b", "llama2", _L2),
    Member("MetaMath-Llemma-7B", "meta-math/MetaMath-Llemma-7B", "codellama", _L2, "drifted",
           "Llemma is continued-pretrained from CodeLlama"),
    Member("CodeLlama-7b-Instruct-hf", "codellama/CodeLlama-7b-Instruct-hf", "codellama", _L2, "drifted"),
    Member("Magicoder-S-CL-7B", "ise-uiuc/Magicoder-S-CL-7B", "codellama", _L2, "drifted"),
    Member("CrystalChat", "LLM360/CrystalChat", "crystal", "CrystalCoderLMHeadModel", "other-arch",
           "custom remote-code architecture"),
]
_BY_NAME = {m.name: m for m in _WHICH16}


def _pick(*names: str) -> tuple[Member, ...]:
    return tuple(_BY_NAME[n] for n in names)


_W2 = ("Llama-2-7b-chat-hf", "vicuna-7b-v1.5")
_W4 = ("Synthia-7B-v1.2", "OpenHermes-7B", *_W2)
_W4D = ("Synthia-7B-v1.2", "Llama-2-7b-evolcodealpaca", "pygmalion-2-7b", "MetaMath-7B-V1.0")
_W8 = ("vicuna-7b-v1.5", "Llama-2-7b-chat-hf", "OpenHermes-7B", "Platypus2-7B", "Llama-2-7b-evolcodealpaca",
       "MetaMath-7B-V1.0", "Synthia-7B-v1.2", "pygmalion-2-7b")
_W12 = (*_W8, "Llama-2-7b-WikiChat-fused", "dolphin-llama2-7b", "BeingWell_llama2_7b", "GOAT-7B-Community")


def real_zoos() -> list[Zoo]:
    def z(name: str, names: tuple[str, ...], desc: str) -> Zoo:
        return Zoo(name, "real", _pick(*names), REAL_TASKS, BASE, desc)

    return [
        z("which2", _W2, "Which2: Llama-2-7b-chat + vicuna-7b-v1.5"),
        z("which4", _W4, "Which4 (chat variant, used by the heuristic-merge and mixture configs)"),
        z("which4_domain", _W4D, "Which4 (domain variant: general, code, roleplay, math)"),
        z("which8", _W8, "Which8: eight Llama-2-7B fine-tunes"),
        z("which12", _W12, "Which12: the twelve Llama-2-7B fine-tunes"),
        z("which16", tuple(m.name for m in _WHICH16),
          "Which16: 12 Llama-2 fine-tunes + 3 CodeLlama-initialised models + CrystalChat"),
    ]
