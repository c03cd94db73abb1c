"""Compares the training numbers of two ablate binaries: every norm on text and the image model
(BN, LN), 40 steps, seed 3. Prints, per configuration, the largest relative deviation of the per-step
loss, and the largest of any compared column (loss, gradient norm, evaluation losses, every probe
both builds write). Usage: python3 scripts/compare_builds.py OLD_BINARY NEW_BINARY SCRATCH_DIR [ABLATE_ARGS...]
(extra arguments go to every run, e.g. `--matmul-precision bf16`).
"""
import csv, subprocess, sys, os
before, after, out = sys.argv[1], sys.argv[2], sys.argv[3]
extra = sys.argv[4:]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cases = [("text", n) for n in ["none","layer","rms","batch","masked-batch","scaled-batch","position-batch","pn-v","power"]] + [("images","batch"),("images","layer")]
worst = {}
for task, norm in cases:
    dirs = {}
    for tag, b in [("before", before), ("after", after)]:
        o = f"{out}/{tag}"
        os.makedirs(o, exist_ok=True)
        r = subprocess.run([b, "--quiet", "--task", task, "--norm", norm, "--steps", "40", "--seed", "3", "--eval-every", "20", "--out", o] + extra, capture_output=True, text=True, cwd=ROOT)
        line = [l for l in r.stdout.splitlines() if l.startswith("  results in")][0]
        dirs[tag] = line.split()[-1]
    def rows(d, f):
        return list(csv.DictReader(open(os.path.join(d if os.path.isabs(d) else os.path.join(ROOT, d), f))))
    md = 0.0
    for f, cols in [("steps.csv", ["loss","grad_norm"]), ("eval.csv", ["eval_loss","train_mode_loss"]), ("probes.csv", ["value"])]:
        a, b = rows(dirs["before"], f), rows(dirs["after"], f)
        if f == "probes.csv":
            # the after build adds probes (rms_dist_*): compare the ones both have
            keep = {(r["step"], r["layer"], r["name"]) for r in a}
            b = [r for r in b if (r["step"], r["layer"], r["name"]) in keep]
        assert len(a) == len(b), (task, norm, f, len(a), len(b))
        for x, y in zip(a, b):
            for c in cols:
                if x[c] == "" and y[c] == "": continue
                u, v = float(x[c]), float(y[c])
                d = abs(u - v) / max(abs(u), 1e-12) if u != v else 0.0
                if f == "steps.csv" and c == "loss": md = max(md, d)
                worst[(task, norm, f, c)] = max(worst.get((task, norm, f, c), 0), d)
    print(f"{task:6} {norm:13} max rel. deviation of per-step loss over 40 steps: {md:.3g}")
print("largest relative deviation of any compared column:", max(worst.values()))
