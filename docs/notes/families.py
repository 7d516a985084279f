"""Per-family case time of results.csv files: python docs/notes/families.py A.csv [B.csv ...] (seconds)."""
import csv, collections, sys
FAM = ("single", "merge", "cluster", "mix", "recipe")
print("| family | " + " | ".join(sys.argv[1:]) + " |")
print("|---|" + "---|" * (len(sys.argv) - 1))
tabs = []
for p in sys.argv[1:]:
    s, n = collections.Counter(), collections.Counter()
    for r in csv.DictReader(open(p)):
        f = r["case"].split("-")[0]
        s[f] += float(r["wall_seconds"] or 0); n[f] += 1
    tabs.append((s, n))
for f in FAM:
    print(f"| {f} | " + " | ".join(f"{s[f]:.0f} ({n[f]})" for s, n in tabs) + " |")
print("| total | " + " | ".join(f"{sum(s.values()):.0f} ({sum(n.values())})" for s, n in tabs) + " |")
