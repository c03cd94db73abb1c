#!/usr/bin/env python3
"""Float32 against bfloat16 matrix products, run by run: does the bf16 mode train like float32?

    python3 scripts/compare_precision.py [RESULTS] [--study bf16-products]

Reads the study's runs (experiments/bf16-products.toml: each norm, 3 seeds, `matmul_precision` f32 and bf16)
from RESULTS (default: results) and prints markdown tables:

- validation loss (evaluation mode) at every evaluation: mean and standard deviation over seeds of each
  precision, the difference of the means, and the mean and spread of the paired difference (same seed:
  same initial weights, batches and dropout masks, so the pair differs only by the products' rounding);
- the verdict per norm: the curves "agree within seed noise" when at every evaluation the difference of
  the means is at most the larger of the two precisions' seed standard deviations;
- BatchNorm's and PowerNorm's first-layer batch-statistic distances after warm-up (median over steps,
  then mean over seeds) and the median step time of each precision.

Needs pandas (scripts/load_results.py).
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_results import load_results  # noqa: E402


def mean_sd(xs):
    xs = list(xs)
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="?", default="results")
    ap.add_argument("--study", default="bf16-products")
    args = ap.parse_args()

    r = load_results(args.results)
    runs = r.runs[(r.runs.get("study") == args.study) & (r.runs.status == "finished")].copy()
    if runs.empty:
        sys.exit(f"no finished runs of study {args.study} in {args.results}: run `ablate run experiments/{args.study}.toml` first")
    if "matmul_precision" not in runs:
        runs["matmul_precision"] = None
    runs["precision"] = runs.matmul_precision.fillna("f32")
    ev = r.eval.merge(runs[["run_id", "norm", "seed", "precision"]], on="run_id")
    builds = sorted(set(runs.git_revision))
    print(f"study {args.study}: {len(runs)} finished runs, build {', '.join(builds)}\n")

    verdicts = []
    for norm in sorted(set(runs.norm)):
        e = ev[ev.norm == norm]
        print(f"### {norm}: validation loss (evaluation mode)\n")
        print("| step | f32 mean ± sd | bf16 mean ± sd | bf16 − f32 | paired difference mean ± sd | within seed sd |")
        print("|---|---|---|---|---|---|")
        agree = True
        worst = 0.0
        for step in sorted(set(e.step)):
            at = e[e.step == step]
            f32 = at[at.precision == "f32"].set_index("seed").eval_loss
            bf16 = at[at.precision == "bf16"].set_index("seed").eval_loss
            if f32.empty or bf16.empty:
                continue
            (mf, sf), (mb, sb) = mean_sd(f32), mean_sd(bf16)
            seeds = sorted(set(f32.index) & set(bf16.index))
            pm, ps = mean_sd(bf16[s] - f32[s] for s in seeds)
            noise = max(sf, sb)
            ok = abs(mb - mf) <= noise
            agree &= ok
            worst = max(worst, abs(mb - mf) / noise if noise > 0 else float("inf"))
            print(f"| {step} | {mf:.4f} ± {sf:.4f} | {mb:.4f} ± {sb:.4f} | {mb - mf:+.4f} | {pm:+.4f} ± {ps:.4f} | "
                  f"{'yes' if ok else 'no'} |")
        verdicts.append((norm, agree, worst))
        print()

    print("### Verdict\n")
    print("| norm | curves agree within seed noise | largest difference of means / seed sd |")
    print("|---|---|---|")
    for norm, agree, worst in verdicts:
        print(f"| {norm} | {'yes' if agree else 'no'} | {worst:.2f} |")
    print()

    p = r.probes.merge(runs[["run_id", "norm", "seed", "precision", "warmup_steps"]], on="run_id")
    first = p[p.layer == "block0.attn_norm"]
    first = first[first.step > first.warmup_steps]
    rows = []
    for (norm, precision), g in first.groupby(["norm", "precision"]):
        for name in ("dist_mean", "dist_var"):
            per_run = g[g.name == name].groupby("run_id").value.median()
            if len(per_run):
                rows.append((norm, precision, name, *mean_sd(per_run)))
    if rows:
        print("### First norm layer's batch statistics after warm-up (median over steps; mean ± sd over seeds)\n")
        print("| norm | precision | statistic | value |")
        print("|---|---|---|---|")
        for norm, precision, name, m, s in rows:
            print(f"| {norm} | {precision} | {name} | {m:.4g} ± {s:.2g} |")
        print()

    print("### Step time (median of each run's median ms/step, probes on, runs sharing the machine)\n")
    print("| norm | f32 ms | bf16 ms | bf16 / f32 |")
    print("|---|---|---|---|")
    for norm in sorted(set(runs.norm)):
        t = runs[runs.norm == norm].groupby("precision").median_step_ms.median()
        if {"f32", "bf16"} <= set(t.index):
            print(f"| {norm} | {t['f32']:.1f} | {t['bf16']:.1f} | {t['bf16'] / t['f32']:.2f} |")


if __name__ == "__main__":
    main()
