"""Synthetic skills, one per benchmark of the paper, with deterministic disjoint splits.

==========  ===========  ======  ==========================  ===========================
skill       paper task   kind    prompt                      answer / choices
==========  ===========  ======  ==========================  ===========================
``mul``     MMLU         mc (4)  ``mul:7*36=``               ``252`` among near misses
``cnt``     ARC-c        mc (4)  ``cnt:abcaadb,a=``          ``3`` among 4 counts
``cmp``     WinoGrande   mc (2)  ``cmp:3712,3727=``          the larger of the two
``add``     GSM8K        gen     ``add:49+97=``              ``146``
``sort``    MBPP         gen     ``sort:7,5,9,3,0=``         ``0,3,5,7,9``
``rev``     HumanEval    gen     ``rev:biqpmz=``             ``zmpqib``
==========  ===========  ======  ==========================  ===========================

Multiple-choice skills are scored by log-likelihood of each choice after the prompt (lm-eval
``multiple_choice``, metric ``acc``); generation skills by greedy decoding and exact match
(``generate_until``, metric ``exact_match``). Training text is always ``<bos>prompt answer<eos>``.

Shifted skills (``evaluated=False``) are competing formats: the same prompt and the same computation
with a different answer convention (reversed sum, descending sort, rotated reversal, the smaller
number...). The base pretrains on standard and shifted formats together, so it can compute but is
unsure which convention to answer in (like a pretrained base before instruction tuning); fine-tunes
resolve that ambiguity, a gain that survives averaging (see ``glue zoo verify``). The drifted family
continues pretraining on shifted formats alone, which moves its weights far from the base.

Splits: ``test`` (300 items, final numbers only), ``search`` (100 items, what selection strategies
may look at) and ``calib`` (64 items, for router initialisation) are disjoint sets of prompts drawn
from independent seeded streams; the ``train`` stream rejects every held-out prompt.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from glue.eval.tasks import Item
from glue.registry import Registry

SPLIT_SIZES = {"test": 300, "search": 100, "calib": 64}
HELD_OUT = ("test", "search", "calib")


@dataclass(frozen=True)
class Skill:
    name: str
    kind: Literal["mc", "gen"]
    analogue: str
    sample: Callable[[random.Random], Item]
    max_answer_len: int
    evaluated: bool = True
    doc: str = ""

    @property
    def metric(self) -> str:
        return "acc" if self.kind == "mc" else "exact_match"


SKILLS: Registry[Skill] = Registry("skill")


def _mc(prompt: str, correct: str, distractors: list[str], rng: random.Random) -> Item:
    choices = [correct, *distractors]
    rng.shuffle(choices)
    return Item(prompt, correct, tuple(choices), choices.index(correct))


# ---- evaluated skills ----------------------------------------------------------------------------
def _mul(rng: random.Random) -> Item:
    a, b = rng.randint(3, 9), rng.randint(12, 199)
    c = a * b
    cands = [c + d for d in (a, -a, 10, -10, 2 * a, -2 * a, 20, -20)]
    cands = [x for x in dict.fromkeys(cands) if x > 0 and len(str(x)) == len(str(c)) and x != c]
    return _mc(f"mul:{a}*{b}=", str(c), [str(x) for x in rng.sample(cands, 3)], rng)


def _cnt(rng: random.Random) -> Item:
    s = "".join(rng.choice("abcd") for _ in range(rng.randint(5, 9)))
    q = rng.choice("abcd")
    c = s.count(q)
    lo = max(0, c - rng.randint(0, 3))
    window = list(range(lo, lo + 4))
    return _mc(f"cnt:{s},{q}=", str(c), [str(x) for x in window if x != c][:3], rng)


def _cmp(rng: random.Random) -> Item:
    a = rng.randint(1000, 9999)
    # most pairs share the two leading digits, so the tens and units must be compared
    b = rng.randint(a // 100 * 100, a // 100 * 100 + 99) if rng.random() < 0.7 else rng.randint(1000, 9999)
    while b == a:
        b = rng.randint(1000, 9999)
    return _mc(f"cmp:{a},{b}=", str(max(a, b)), [str(min(a, b))], rng)


def _add(rng: random.Random) -> Item:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return Item(f"add:{a}+{b}=", str(a + b))


def _sort(rng: random.Random) -> Item:
    xs = [rng.randint(0, 9) for _ in range(rng.randint(4, 8))]
    return Item(f"sort:{','.join(map(str, xs))}=", ",".join(map(str, sorted(xs))))


def _rev(rng: random.Random) -> Item:
    s = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 8)))
    return Item(f"rev:{s}=", s[::-1])


SKILLS.register("mul", Skill("mul", "mc", "mmlu", _mul, 4, doc="times-table knowledge, 4 near-miss choices"))
SKILLS.register("cnt", Skill("cnt", "mc", "arc_challenge", _cnt, 1, doc="count a letter, 4 choices"))
SKILLS.register("cmp", Skill("cmp", "mc", "winogrande", _cmp, 4, doc="pick the larger of two numbers"))
SKILLS.register("add", Skill("add", "gen", "gsm8k", _add, 3, doc="two-digit addition"))
SKILLS.register("sort", Skill("sort", "gen", "mbpp", _sort, 15, doc="sort a list of digits"))
SKILLS.register("rev", Skill("rev", "gen", "humaneval", _rev, 8, doc="reverse a string"))

EVAL_SKILLS = tuple(n for n, s in SKILLS.items() if s.evaluated)


# ---- shifted skills (drifted family's continued pretraining) -------------------------------------
def _shift(base: str, fn: Callable[[Item], str], doc: str) -> None:
    src = SKILLS.get(base)

    def sample(rng: random.Random) -> Item:
        it = src.sample(rng)
        return Item(it.prompt, fn(it))

    SKILLS.register(f"{base}_x", Skill(f"{base}_x", "gen", "-", sample, 15, evaluated=False, doc=doc))


_shift("add", lambda it: it.answer[::-1], "addition answered with reversed digits")
_shift("sort", lambda it: it.answer[::-1], "sort descending")
_shift("rev", lambda it: it.answer[1:] + it.answer[0], "reverse, then rotate left by one")
_shift("mul", lambda it: str(int(it.answer) + 1), "product plus one")
_shift("cmp", lambda it: min(it.choices, key=int), "pick the smaller")
_shift("cnt", lambda it: str(len(it.prompt.split(":")[1].split(",")[0]) - int(it.answer)), "count the other letters")


# ---- splits ---------------------------------------------------------------------------------------
def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@lru_cache(maxsize=None)
def split(skill: str, name: str) -> tuple[Item, ...]:
    """The held-out split ``name`` of ``skill``: unique prompts, disjoint from the earlier splits."""
    if name not in SPLIT_SIZES:
        raise ValueError(f"unknown split {name!r}; held-out splits: {list(SPLIT_SIZES)} (train is a stream)")
    sk = SKILLS.get(skill)
    taken = {it.prompt for prev in HELD_OUT[: HELD_OUT.index(name)] for it in split(skill, prev)}
    rng = random.Random(_seed("split", skill, name))
    out: dict[str, Item] = {}
    tries = 0
    while len(out) < SPLIT_SIZES[name]:
        it = sk.sample(rng)
        tries += 1
        if it.prompt not in taken and it.prompt not in out:
            out[it.prompt] = it
        if tries > 100 * SPLIT_SIZES[name]:
            raise RuntimeError(f"skill {skill!r}: prompt space too small for split {name!r}")
    return tuple(out.values())


@lru_cache(maxsize=None)
def held_out_prompts(skill: str) -> frozenset[str]:
    base = skill.split("_")[0]
    return frozenset(it.prompt for s in HELD_OUT for it in split(base, s))


def train_stream(skill: str, seed: int) -> Iterator[Item]:
    """Infinite stream of training items of ``skill``, never a held-out prompt of any split."""
    sk = SKILLS.get(skill)
    banned = held_out_prompts(skill)
    rng = random.Random(_seed("train", skill, seed))
    while True:
        it = sk.sample(rng)
        if it.prompt not in banned:
            yield it
