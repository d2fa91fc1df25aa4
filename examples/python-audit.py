"""A memorization audit from Python, notebook style: probe, load the table,
look at the tail, plot the CCDF of n_pre.

    PYTHONPATH=build/python python3 examples/python-audit.py MODEL DATA [OUT_DIR]

MODEL is a GGUF file or a Hugging Face folder (add ADAPTER=path/to/adapter in
the environment for a PEFT adapter), DATA an SFT dataset (JSONL/JSON/CSV).
Without arguments it takes models/stories260K/stories260K.gguf and
data/medquad.jsonl from the folder MEMSKEW_SHARED_DIR names. Each "cell"
below is a step you would run in a notebook.
"""

import os
import sys

import numpy as np

import memskew

# --- cell 1: inputs ----------------------------------------------------------
shared = os.environ.get("MEMSKEW_SHARED_DIR", "")
if len(sys.argv) < 3 and not shared:
    sys.exit(__doc__)
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(shared, "models", "stories260K", "stories260K.gguf")
data = sys.argv[2] if len(sys.argv) > 2 else os.path.join(shared, "data", "medquad.jsonl")
out_dir = sys.argv[3] if len(sys.argv) > 3 else "python-audit"
os.makedirs(out_dir, exist_ok=True)
store_path = os.path.join(out_dir, "run.db")
for path in (model, data):
    if not os.path.exists(path):
        sys.exit(f"python-audit: {path} not found; pass MODEL and DATA")

# --- cell 2: probe every sample (resumable: re-running continues) -----------
def show(p):
    print(f"\r{p['done']}/{p['total']} samples, {p['tokens'] / max(p['seconds'], 1e-9):.0f} tokens/s", end="")

summary = memskew.probe(model, data, store_path, limit=300, max_reference_tokens=64, generate=True,
                        resume=os.path.exists(store_path), progress=show,
                        adapter=[os.environ["ADAPTER"]] if os.environ.get("ADAPTER") else None)
print()
if isinstance(summary, list):  # one summary per adapter/checkpoint
    summary = summary[-1]
print(f"mean n_pre {summary['mean_n_pre']:.2f}, max {summary['max_n_pre']} ({summary['max_n_pre_sample']}), "
      f"{summary['exact']} verbatim")

# --- cell 3: the per-sample table (a pandas DataFrame when pandas is installed)
store = memskew.Store(store_path)
df = store.samples()
n_pre = np.asarray(df["n_pre"], dtype=float)
print(f"{len(n_pre)} samples; quantiles of n_pre: p50 {np.quantile(n_pre, 0.5):.0f}, "
      f"p90 {np.quantile(n_pre, 0.9):.0f}, p99 {np.quantile(n_pre, 0.99):.0f}, max {n_pre.max():.0f}")
if hasattr(df, "sort_values"):
    print(df.sort_values("n_pre", ascending=False)[["sample_id", "n_pre", "length", "loss", "rouge_l"]].head(5))

# --- cell 4: one sample's per-token arrays -----------------------------------
top = df["sample_id"][int(np.argmax(n_pre))]
arrays = store.token_arrays(top)
print(f"most memorized: {top}: first mismatch at position {int(n_pre.max()) + 1}, "
      f"log-probabilities of its first tokens {np.round(arrays['logprob'][:8], 3)}")

# --- cell 5: the analysis, as `memskew analyze --json` --------------------------
analysis = memskew.analyze(store)
print("analysis sections:", ", ".join(sorted(analysis)))

# --- cell 6: the CCDF of n_pre (log scale), if matplotlib is there -------------
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipping the plot (the HTML report has it: memskew.report)")
else:
    values = np.sort(n_pre)
    ccdf = 1.0 - np.arange(len(values)) / len(values)  # P(N_pre >= value)
    plt.step(values, ccdf, where="post")
    plt.yscale("log")
    plt.xlabel("n_pre (tokens reproduced before the first divergence)")
    plt.ylabel("P(N_pre >= n)")
    plt.title("The tail of memorization")
    png = os.path.join(out_dir, "ccdf.png")
    plt.savefig(png, dpi=120)
    print("wrote", png)

memskew.report(store, os.path.join(out_dir, "report.html"))
print("wrote", os.path.join(out_dir, "report.html"))
