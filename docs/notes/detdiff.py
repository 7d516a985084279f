"""Diff two results.csv files on every column that does not measure time, memory or session caches."""
import csv, sys
NONDET = ("seconds", "latency_ms", "peak_rss_mb", "rss_delta_mb", "peak_cuda_mb", "time", "commit", "tok_s",
          "extra.cached_evaluations", "extra.reused_clusters", "similarity_peak", "similarity_rss")
def load(path):
    rows = list(csv.DictReader(open(path)))
    cols = list(rows[0])
    keep = [c for c in cols if not any(d in c for d in NONDET)]
    return cols, keep, {r["case"]: tuple(r[c] for c in keep) for r in rows}
ca, ka, a = load(sys.argv[1]); cb, kb, b = load(sys.argv[2])
assert ka == kb, "different columns"
print(f"{len(a)} vs {len(b)} cases; {len(ka)} of {len(ca)} columns compared; left out: {sorted(set(ca) - set(ka))}")
diff = sorted(c for c in set(a) | set(b) if a.get(c) != b.get(c))
print("IDENTICAL" if not diff else f"DIFFERENT: {diff}")
