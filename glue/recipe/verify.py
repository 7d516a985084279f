"""Check that a surrogate zoo has the structure it plants (``glue zoo verify NAME``).

Claims checked (from the foundation issue), each reported with its numbers:

- ``gain``: every fine-tune of the base beats the base by >= 20 points on a task it was trained for
  (its emphasised skills; all skills for a uniform mix).
- ``harmful``: the harmful model has the lowest average of its family.
- ``complementary``: no member is best (ties count for everyone tied) on more than half the tasks.
- ``merge``: a linear 50/50 merge of two base-family fine-tunes with different specialties keeps at
  least half of each one's gain over the base on its specialty; a merge with a drifted-family
  member loses most of it (keeps less than half).
- ``families``: raw weight similarity (mean per-column cosine, attention + MLP) inside the base
  family is above every base-family-vs-drifted pair.

Each verdict carries its ``margin``: how far the measured number is from the claim's threshold, in
its own unit (accuracy for ``gain``/``harmful``, tasks for ``complementary``, share of the gain kept
for the merges, cosine for ``families``); positive when the claim holds, so a small margin is a
fragile claim (NaN for ``merge`` when a member has no gain on its specialty to keep).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pandas as pd
import torch

from glue.eval import EvalSpec, evaluate_spec
from glue.io import load_model
from glue.surrogate import zoos as _zoos  # noqa: F401  (registers the recipes)
from glue.surrogate.recipes import RECIPES
from glue.zoo import Zoo, resolve

GAIN_MIN = 0.20


@dataclass
class Verdict:
    claim: str
    ok: bool
    detail: str
    margin: float | None = None  # distance from the threshold, > 0 when the claim holds (module doc)


@dataclass
class ZooReport:
    scores: pd.DataFrame  # member x task (+ average), base first
    verdicts: list[Verdict] = field(default_factory=list)
    merges: pd.DataFrame | None = None
    similarity: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


def trained_skills(recipe_name: str) -> list[str]:
    """Skills a recipe emphasises (weighted above its replay weight; all of them for a uniform mix)."""
    mix = dict(RECIPES.get(recipe_name).mix)
    low = min(mix.values())
    return [s for s, w in mix.items() if w > low] or list(mix)


def _recipe(member) -> str:
    return member.source.split(":", 1)[1]


def specialty(scores: pd.DataFrame, member: str, base: str, recipe: str) -> tuple[str, float]:
    """The trained skill with the largest gain over the base, and that gain."""
    gains = {s: scores.loc[member, s] - scores.loc[base, s] for s in trained_skills(recipe) if s in scores.columns}
    s = max(gains, key=gains.get)
    return s, gains[s]


def _avg_merge(a: torch.nn.Module, b: torch.nn.Module) -> torch.nn.Module:
    """A linear 50/50 merge of two resident models (through ``glue.merge``, into a copy of ``a``)."""
    import copy

    from glue.merge import InMemoryMerger

    merger = InMemoryMerger([a.state_dict(), b.state_dict()], model_names=["a", "b"])
    return merger.merge_into(copy.deepcopy(a), "linear", weights=[0.5, 0.5])


def verify_zoo(zoo: Zoo, split: str = "test", evaluator: str = "native", merge_pairs: str = "all", *,
               eval: EvalSpec | None = None) -> ZooReport:
    """Evaluate every model of ``zoo`` and check the planted-structure claims (see module doc). The models
    are scored as ``eval`` says (an ``EvalSpec``, its tasks default to the zoo's), else on ``split`` with
    ``evaluator``."""
    from glue.cluster.pipeline import zoo_similarity

    ev = (eval or EvalSpec(split=split, evaluator=evaluator)).with_tasks(zoo.tasks)

    if zoo.kind != "surrogate" or zoo.base is None:
        raise ValueError(f"zoo {zoo.name!r}: verify needs a surrogate zoo with a base")
    base = zoo.base.name
    models = {m.name: load_model(resolve(m)) for m in zoo.all_models()}
    rows = {n: evaluate_spec(m, tok, ev).scores for n, (m, tok) in models.items()}
    scores = pd.DataFrame(rows).T[list(zoo.tasks)]
    scores["average"] = scores[list(zoo.tasks)].mean(axis=1)
    rep = ZooReport(scores)
    fts = [m for m in zoo.members if m.role == "finetune"]
    tasks = list(zoo.tasks)

    # gain
    bad, gains = [], {}
    for m in fts:
        s, g = specialty(scores, m.name, base, _recipe(m))
        gains[m.name] = (s, g)
        if g < GAIN_MIN:
            bad.append(f"{m.name} ({s} {g:+.2f})")
    weakest = min(gains, key=lambda n: gains[n][1])
    rep.verdicts.append(Verdict("gain", not bad, f"{len(fts) - len(bad)}/{len(fts)} fine-tunes gain >= {GAIN_MIN:.2f} "
                                f"on a trained task; smallest: {weakest} {gains[weakest][0]} {gains[weakest][1]:+.2f}"
                                + (f"; short: {', '.join(bad)}" if bad else ""), gains[weakest][1] - GAIN_MIN))
    # harmful
    for h in (m for m in zoo.members if m.role == "harmful"):
        fam = [m.name for m in zoo.all_models() if m.family == h.family]
        low = scores.loc[fam, "average"].idxmin()
        others = scores.loc[[n for n in fam if n != h.name], "average"]
        rep.verdicts.append(Verdict("harmful", low == h.name, f"{h.name} average {scores.loc[h.name, 'average']:.3f}; "
                                    f"lowest of family {h.family!r} ({len(fam)} models) is {low}; next lowest "
                                    f"{others.idxmin()} {others.min():.3f}",
                                    float(others.min() - scores.loc[h.name, "average"])))
    # complementary
    members = [m.name for m in zoo.members]
    best = {n: [t for t in tasks if scores.loc[n, t] == scores.loc[members, t].max()] for n in members}
    worst = max(members, key=lambda n: len(best[n]))
    rep.verdicts.append(Verdict("complementary", len(best[worst]) <= len(tasks) / 2,
                                f"most tasks won by one member: {worst} on {len(best[worst])}/{len(tasks)} "
                                f"({', '.join(best[worst])}); winners: "
                                + "; ".join(f"{t}: {', '.join(n for n in members if t in best[n])}" for t in tasks),
                                len(tasks) / 2 - len(best[worst])))
    # merges
    spec = {m.name: specialty(scores, m.name, base, _recipe(m))[0] for m in fts}
    pairs = [(a, b) for a, b in itertools.combinations([m.name for m in fts], 2) if spec[a] != spec[b]]
    if merge_pairs == "first":
        pairs = pairs[:1]
    drifted = [m.name for m in zoo.members if m.role == "drifted"]
    pairs += [(f.name, d) for f in (fts if merge_pairs == "all" else fts[:1]) for d in drifted]
    mrows = []
    for a, b in pairs:
        merged = _avg_merge(models[a][0], models[b][0])
        r = evaluate_spec(merged, models[a][1], ev).scores
        row = {"a": a, "b": b, "kind": "drifted" if b in drifted else "base-family", "average": sum(r.values()) / len(r)}
        for side, n in (("a", a), ("b", b)):
            if n in spec:
                s = spec[n]
                gain = scores.loc[n, s] - scores.loc[base, s]
                row |= {f"{side}_skill": s, f"{side}_member": scores.loc[n, s], f"{side}_merge": r[s],
                        f"{side}_kept": (r[s] - scores.loc[base, s]) / gain if gain > 0 else float("nan")}
        mrows.append(row)
    if mrows:
        mdf = pd.DataFrame(mrows)
        rep.merges = mdf
        fam = mdf[mdf.kind == "base-family"]
        first = fam.iloc[0] if len(fam) else None
        if first is not None:
            kept_pairs = ((fam.a_kept >= 0.5) & (fam.b_kept >= 0.5)).sum()
            rep.verdicts.append(Verdict(
                "merge", bool(first.a_kept >= 0.5 and first.b_kept >= 0.5),
                f"{first.a}+{first.b}: keeps {first.a_kept:.0%} of {first.a}'s {first.a_skill} gain and "
                f"{first.b_kept:.0%} of {first.b}'s {first.b_skill} gain; {kept_pairs}/{len(fam)} base-family pairs keep "
                f">= 50% of both (median kept {pd.concat([fam.a_kept, fam.b_kept]).median():.0%})",
                float(min(first.a_kept, first.b_kept) - 0.5) if pd.notna([first.a_kept, first.b_kept]).all()
                else float("nan")))  # no gain to keep: no margin
        dr = mdf[mdf.kind == "drifted"].dropna(subset=["a_kept"])
        if len(dr):
            first = dr[dr.a == dr.a.iloc[0]]
            rep.verdicts.append(Verdict(
                "merge-drifted", bool(dr.a_kept.median() < 0.5),
                f"median kept {dr.a_kept.median():.0%} over {len(dr)} fine-tune x drifted pairs "
                f"({(dr.a_kept < 0.5).sum()} keep < 50%); "
                + "; ".join(f"{r.a}+{r.b} keeps {r.a_kept:.0%} of {r.a}'s {r.a_skill} gain" for r in first.itertuples()),
                float(0.5 - dr.a_kept.median())))
    # similarity
    same_arch = {m.name: resolve(m) for m in zoo.all_models() if m.architecture == zoo.base.architecture}
    zs = zoo_similarity(same_arch)
    sim = pd.DataFrame(zs.matrix("all"), index=zs.names, columns=zs.names)
    fam_of = {m.name: m.family for m in zoo.all_models()}
    inside = [sim.loc[a, b] for a, b in itertools.combinations(zs.names, 2) if fam_of[a] == fam_of[b] == zoo.base.family]
    across = [sim.loc[a, b] for a, b in itertools.combinations(zs.names, 2)
              if {fam_of[a], fam_of[b]} == {zoo.base.family, "drift"}]
    if inside and across:
        rep.verdicts.append(Verdict("families", min(inside) > max(across),
                                    f"base family pairs {min(inside):.3f}-{max(inside):.3f}; base-vs-drifted pairs "
                                    f"{min(across):.3f}-{max(across):.3f}", float(min(inside) - max(across))))
    rep.similarity = sim
    return rep
