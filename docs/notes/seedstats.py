"""Per-member test averages over seeds, and each claim's margin per seed, from `glue zoo verify` markdown outputs."""
import statistics, sys
from pathlib import Path

def tables(path):
    lines = Path(path).read_text().splitlines()
    out, cur, hdr = {}, None, None
    for ln in lines:
        if ln.startswith("## "):
            cur = ln[3:]; hdr = None; continue
        if ln.startswith("|") and not ln.startswith("|---"):
            cells = [c.strip() for c in ln.strip("|").split("|")]
            if hdr is None:
                hdr = cells; out[cur] = []
            else:
                out[cur].append(dict(zip(hdr, cells)))
    return out

files = sys.argv[1:]
ts = [tables(f) for f in files]
scores = [next(v for k, v in t.items() if "test split" in k) for t in ts]
claims = [t["claims"] for t in ts]
members = [r["member"] for r in scores[0]]
tasks = [h for h in scores[0][0] if h not in ("member", "role")]
print("| member | " + " | ".join(f"avg seed{i}" for i in range(len(files))) + " | mean | spread (max-min) | " + " | ".join(f"{t} mean±sd" for t in tasks if t != "average") + " |")
print("|---" * (3 + len(files) + len(tasks) - 1) + "|")
for m in members:
    rows = [next(r for r in s if r["member"] == m) for s in scores]
    av = [float(r["average"]) for r in rows]
    per = []
    for t in tasks:
        if t == "average": continue
        v = [float(r[t]) for r in rows]
        per.append(f"{statistics.mean(v):.3f}±{statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}")
    print(f"| {m} | " + " | ".join(f"{a:.3f}" for a in av) + f" | {statistics.mean(av):.3f} | {max(av)-min(av):.3f} | " + " | ".join(per) + " |")
print()
print("| claim | " + " | ".join(f"seed{i} (ok, margin)" for i in range(len(files))) + " | min margin |")
print("|---" * (2 + len(files)) + "|")
for c in [r["claim"] for r in claims[0]]:
    rs = [next(r for r in cl if r["claim"] == c) for cl in claims]
    ms = [float(r["margin"]) for r in rs]
    print(f"| {c} | " + " | ".join(f"{r['ok']} {float(r['margin']):.3f}" for r in rs) + f" | {min(ms):.3f} |")
