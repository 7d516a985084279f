"""Compare two results roots case by case on the scores and config hashes (issue 24's "identical for the
cases that existed before"): ``python docs/notes/scorediff.py RESULTS_A RESULTS_B ZOO [--cases-from RUNFILE]``.
Latest record per case of each root (``seeds.load_seed``); only cases in both (or in RUNFILE's cases)."""
import json, sys
from pathlib import Path
from glue.bench.scripts.seeds import load_seed

a_root, b_root, zoo = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
only = None
if "--cases-from" in sys.argv:
    only = {json.loads(l)["case"] for l in open(sys.argv[sys.argv.index("--cases-from") + 1]) if l.strip()}


def index(root):
    """Latest record per case of the zoo.lock's fingerprint, as ``glue report`` and the seeds table pick them."""
    return {r.case: r for r in load_seed(zoo, 0, root).records}


a, b = index(a_root), index(b_root)
common = sorted(set(a) & set(b) if only is None else set(a) & set(b) & only)
diff = [c for c in common if (a[c].scores, a[c].config_hash) != (b[c].scores, b[c].config_hash)]
print(f"{len(a)} vs {len(b)} cases, {len(common)} compared (scores of every task and config hash)")
for c in diff:
    print(f"DIFFERENT {c}: {a[c].average:.4f} vs {b[c].average:.4f}, hash {a[c].config_hash} vs {b[c].config_hash}")
print("IDENTICAL" if not diff else f"{len(diff)} differ")
missing = sorted((set(a) if only is None else only & set(a)) - set(b))
if missing:
    print(f"not in the second root: {missing}")
