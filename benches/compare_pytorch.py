#!/usr/bin/env python3
"""Side-by-side step time: ablate (Burn, flex by default) vs the same model in PyTorch, one invocation,
over model sizes, sequence lengths and padding, with each step's FLOPs and achieved GFLOP/s.

The PyTorch model mirrors ablate's text model: token embedding x sqrt(d) + learned positions, pre-norm
blocks (norm -> causal self-attention with key padding mask -> dropout -> residual; norm -> Linear(d, ff)
-> GELU -> dropout -> Linear(ff, d) -> dropout -> residual), final norm, LM head tied to the embedding,
computed on real tokens only, cross-entropy, Adam (0.9, 0.98), global gradient-norm clip 1.0. Batches are
B sentences padded to the longest (at most --max-len) with the length distribution of the shipped corpus,
as ablate draws them; `--full` makes every sentence --max-len long (no padding): ablate then trains on the
shipped corpus's words cut into lines of --max-len tokens.

Usage (from the repository root, torch installed, e.g. in a virtual environment):
    python3 benches/compare_pytorch.py [--norms layer,batch] [--steps 40] [--rounds 3] [--threads 2]
        [--d 128 --layers 2 --heads 4 --ff 512 --max-len 64 --batch 32] [--full]
    python3 benches/compare_pytorch.py --grid [--full]     # d 128/256/512 x layers 2/6 x max-len 64/256
    python3 benches/compare_pytorch.py --background-load   # a second process keeps one core busy
    python3 benches/compare_pytorch.py --peak              # the machine's SGEMM rate on the step's shapes
    python3 benches/compare_pytorch.py --precision both [--torch-bf16]
        # ablate's float32 and bfloat16 products in alternation, against PyTorch in float32 (and under
        # bfloat16 autocast); --precision bf16 times only the bfloat16 mode
    python3 benches/compare_pytorch.py --baseline /path/to/older/ablate
        # also times another ablate binary (e.g. the build before a change) in every round: the
        # change's effect and both ratios to PyTorch from one invocation

Each round runs `ablate bench --no-probes` (the release of cargo's dev profile, which optimizes the
dependencies), then PyTorch in a fresh process with the same shapes; rounds alternate so that both see
the same machine (a shared VM's speed drifts by 10-20 % over minutes). Medians over the second half of
the steps, then over rounds. Peak resident memory is each process's own (wait4's ru_maxrss).

FLOPs per step: 3 x the forward pass's matrix-product FLOPs (the backward pass does two products per
forward one: the input's and the weight's gradient). Forward, per block: QKV 2·N·d·3d, scores 2·B·T²·d,
weights x values 2·B·T²·d, output projection 2·N·d·d, FFN 2·2·N·d·ff; LM head 2·R·d·V; N = B·T
positions (padding included: both frameworks compute on it), R = real tokens. Elementwise work (norms,
softmax, GELU, Adam) is left out; it is under 2 % of the FLOPs at d 128.
"""
import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step_flops(d, layers, ff, vocab, batch, t, real):
    """Matrix-product FLOPs of one training step (see the module's documentation)."""
    n = batch * t
    block = 2 * n * d * 3 * d + 2 * 2 * batch * t * t * d + 2 * n * d * d + 2 * 2 * n * d * ff
    return 3 * (layers * block + 2 * real * d * vocab)


def lengths_of(corpus, max_len, full):
    if full:
        return [max_len]
    out = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            n = len(line.split())
            if n:
                out.append(min(n + 1, max_len))
    return out


def batch_shapes(lengths, batch, steps, seed=1):
    """(padded length, real tokens) of `steps` batches drawn as ablate draws them."""
    rng = random.Random(seed)
    shapes = []
    for _ in range(steps):
        ls = [rng.choice(lengths) for _ in range(batch)]
        shapes.append((max(ls), sum(ls)))
    return shapes


# ---------------------------------------------------------------- PyTorch side (a worker process)

def torch_worker(cfg):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(cfg["threads"])
    # cpu here; "cuda" from benches/compare_pytorch_gpu.py, in plain float32 (no TF32), as ablate
    device = torch.device(cfg.get("device", "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    class MaskedBatchNorm(nn.Module):
        """BatchNorm over all batch x time positions, padding included (ablate's `batch`)."""

        def __init__(self, d):
            super().__init__()
            self.bn = nn.BatchNorm1d(d, momentum=0.1, eps=1e-5)

        def forward(self, x):
            b, t, d = x.shape
            return self.bn(x.reshape(b * t, d)).reshape(b, t, d)

    def make_norm(kind, d):
        return nn.LayerNorm(d) if kind == "layer" else MaskedBatchNorm(d)

    class Block(nn.Module):
        def __init__(self, kind, d, heads, ff, dropout):
            super().__init__()
            self.n1, self.n2 = make_norm(kind, d), make_norm(kind, d)
            self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
            self.drop = nn.Dropout(dropout)

        def forward(self, x, causal, pad):
            h = self.n1(x)
            a, _ = self.attn(h, h, h, attn_mask=causal, key_padding_mask=pad, need_weights=False)
            x = x + self.drop(a)
            return x + self.drop(self.ff(self.n2(x)))

    class LM(nn.Module):
        def __init__(self, kind, vocab, d, layers, heads, ff, max_len, dropout=0.1):
            super().__init__()
            self.tok = nn.Embedding(vocab, d)
            nn.init.normal_(self.tok.weight, std=d ** -0.5)
            self.pos = nn.Embedding(max_len, d)
            nn.init.normal_(self.pos.weight, std=0.02)
            self.blocks = nn.ModuleList(Block(kind, d, heads, ff, dropout) for _ in range(layers))
            self.final = make_norm(kind, d)
            self.drop = nn.Dropout(dropout)
            self.scale = math.sqrt(d)

        def forward(self, tokens, targets, real):
            b, t = tokens.shape
            x = self.tok(tokens) * self.scale + self.pos(torch.arange(t, device=device)).unsqueeze(0)
            x = self.drop(x)
            causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=device), 1)
            for blk in self.blocks:
                x = blk(x, causal, ~real)
            h = self.final(x)[real]
            logits = h @ self.tok.weight.t()
            return F.cross_entropy(logits, targets[real])

    torch.manual_seed(1)
    c = cfg
    model = LM(c["norm"], c["vocab"], c["d"], c["layers"], c["heads"], c["ff"], c["max_len"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-8)
    rng = random.Random(1)
    times = []
    for _ in range(c["steps"]):
        ls = [rng.choice(c["lengths"]) for _ in range(c["batch"])]
        t = max(ls)
        tokens = torch.randint(4, c["vocab"], (c["batch"], t))
        real = torch.zeros(c["batch"], t, dtype=torch.bool)
        for i, n in enumerate(ls):
            real[i, :n] = True
        tokens, targets = tokens.masked_fill(~real, 0), torch.roll(tokens, -1, 1)
        tokens, targets, real = tokens.to(device), targets.to(device), real.to(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.get("autocast", False)):
            loss = model(tokens, targets, real)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"ms": statistics.median(times[len(times) // 2:])}))


def peak_worker(cfg):
    """SGEMM rate of torch (MKL/oneDNN) on the step's product shapes: each forward product
    (N x d)(d x k) with its two backward products (N x k)(k x d) and (d x N)(N x k)."""
    import torch

    torch.set_num_threads(cfg["threads"])
    d, ff, n, v = cfg["d"], cfg["ff"], cfg["batch"] * cfg["max_len"], cfg["vocab"]
    shapes = [(n, d, 3 * d), (n, d, d), (n, d, ff), (n, ff, d), (n, d, v)]
    total_flops, total_s = 0.0, 0.0
    rows = []
    for m, k, nn_ in shapes:
        for a_shape, b_shape in [((m, k), (k, nn_)), ((m, nn_), (nn_, k)), ((k, m), (m, nn_))]:
            a, b = torch.randn(*a_shape), torch.randn(*b_shape)
            flops = 2 * a_shape[0] * a_shape[1] * b_shape[1]
            for _ in range(2):
                a @ b
            reps = max(3, int(2e9 / flops))
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            s = (time.perf_counter() - t0) / reps
            total_flops += flops
            total_s += s
            rows.append((a_shape, b_shape, flops / s / 1e9))
    print(json.dumps({"gflops": total_flops / total_s / 1e9,
                      "rows": [[list(a), list(b), g] for a, b, g in rows]}))


def run_worker(kind, cfg):
    """Runs a worker in a fresh process; returns its JSON result and its peak RSS (MiB)."""
    # the configuration (with its list of sentence lengths) goes through stdin: too long for argv
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", kind, "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdin.write(json.dumps(cfg))
    p.stdin.close()
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{kind} worker failed ({status})")
    return json.loads(out), usage.ru_maxrss / 1024


# ---------------------------------------------------------------- ablate side

def full_corpus(src, max_len):
    """The shipped sentences' words in lines of exactly max_len - 1 words: with <bos> each line is
    max_len tokens, so every batch is full (no padding)."""
    fd, path = tempfile.mkstemp(prefix="ablate-full-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as out, open(src, encoding="utf-8") as f:
        words = []
        for line in f:
            words.extend(line.split())
            while len(words) >= max_len - 1:
                out.write(" ".join(words[:max_len - 1]) + "\n")
                words = words[max_len - 1:]
    return path


def ablate_binary():
    subprocess.run(["cargo", "build", "--quiet", "--bin", "ablate"], check=True, cwd=ROOT)
    return os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "ablate")


def bench_args(norm, c, steps, backend, corpus, precision):
    """`ablate bench` timing `norm` without probes on configuration `c`."""
    return ["bench", "--norms", norm, "--no-probes", "--steps", str(steps), "--backend", backend,
            "--matmul-precision", precision,
            "--d-model", str(c["d"]), "--layers", str(c["layers"]), "--heads", str(c["heads"]),
            "--d-ff", str(c["ff"]), "--max-len", str(c["max_len"]), "--batch-size", str(c["batch"]),
            "--corpus", corpus]


def time_ablate(binary, norm, c, steps, backend, corpus, precision):
    cmd = [binary] + bench_args(norm, c, steps, backend, corpus, precision)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"ablate bench failed: {err.strip()}")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] == norm and parts[1] in ("on", "off"):
            return float(parts[2])
    raise SystemExit(f"no timing in ablate's output:\n{out}")


def ablate_rss(binary, cmd_args):
    """Peak RSS (MiB) of one `ablate bench` process."""
    p = subprocess.Popen([binary] + cmd_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(p.pid, 0)
    return usage.ru_maxrss / 1024


# ---------------------------------------------------------------- driver

# --targets: the four reference measurements, each ratio beside its target
TARGETS = [
    ("d 128, padded batches", dict(d=128, layers=2, heads=4, ff=512), False, False, "layer,batch", 0.7),
    ("d 128, full 32 x 64 batches", dict(d=128, layers=2, heads=4, ff=512), True, False, "layer,batch", 0.7),
    ("d 512, 6 layers, full 32 x 64 batches", dict(d=512, layers=6, heads=8, ff=2048), True, False, "layer", 0.8),
    ("d 128, padded batches, one core kept busy", dict(d=128, layers=2, heads=4, ff=512), False, True,
     "layer,batch", 0.9),
]


def configs(args):
    """Each configuration: model shape, and whether its batches are full, a second process keeps a
    core busy, which norms it times and (--targets) its case name and target ratio."""
    if args.targets:
        return [dict(shape, max_len=64, batch=32, full=full, loaded=loaded, norms=norms, case=case, target=target)
                for case, shape, full, loaded, norms, target in TARGETS]
    if not args.grid:
        return [dict(d=args.d, layers=args.layers, heads=args.heads or max(4, args.d // 64),
                     ff=args.ff or 4 * args.d, max_len=args.max_len, batch=args.batch)]
    return [dict(d=d, layers=l, heads=max(4, d // 64), ff=4 * d, max_len=t, batch=args.batch)
            for d in (128, 256, 512) for l in (2, 6) for t in (64, 256)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norms", default="layer,batch", help="layer and/or batch")
    ap.add_argument("--steps", type=int, default=0,
                    help="timed steps (default: about 15 s of PyTorch steps, 8 to 40)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=0, help="default: max(4, d / 64)")
    ap.add_argument("--ff", type=int, default=0, help="default: 4 d")
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--full", action="store_true", help="every sentence max-len long: no padding")
    ap.add_argument("--grid", action="store_true", help="d 128/256/512 x layers 2/6 x max-len 64/256")
    ap.add_argument("--background-load", action="store_true",
                    help="a second process keeps one core busy while timing")
    ap.add_argument("--peak", action="store_true", help="also measure torch's SGEMM rate on the step's shapes")
    ap.add_argument("--targets", action="store_true",
                    help="the four reference cases in one invocation (d 128 padded and full, d 512 x 6 layers full, "
                         "d 128 padded with one core busy), each ratio beside its target")
    ap.add_argument("--corpus", default="data/austen.sents.txt")
    ap.add_argument("--backend", default="flex", help="ablate's CPU backend: flex (default) or ndarray")
    ap.add_argument("--precision", choices=["f32", "bf16", "both"], default="f32",
                    help="ablate's matrix products (its --matmul-precision; both: f32 and bf16 in alternation, "
                         "a row each); PyTorch stays float32")
    ap.add_argument("--torch-bf16", action="store_true",
                    help="also time PyTorch under torch.autocast('cpu', bfloat16), a third process per round")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="another ablate binary (e.g. an earlier build) timed in every round too")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, cfg = args.worker
        cfg = sys.stdin.read() if cfg == "-" else cfg
        (torch_worker if kind == "torch" else peak_worker)(json.loads(cfg))
        return
    if args.targets and (args.grid or args.full or args.background_load):
        raise SystemExit("--targets measures its own four cases: leave out --grid, --full and --background-load")
    corpus = os.path.join(ROOT, args.corpus)
    binary = ablate_binary()
    if args.baseline and not os.access(args.baseline, os.X_OK):
        raise SystemExit(f"--baseline {args.baseline}: not an executable file")
    load = None
    try:
        rows = []
        for c in configs(args):
            full = c.pop("full", args.full)
            loaded = c.pop("loaded", args.background_load)
            norms = c.pop("norms", args.norms)
            # --targets: the case's name and target ratio go into its rows, not to the workers
            case = {k: c.pop(k) for k in ("case", "target") if k in c}
            if loaded and not load:
                load = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            elif load and not loaded:
                load.kill()
                load.wait()
                load = None
            lengths = lengths_of(corpus, c["max_len"], full)
            ab_corpus = full_corpus(corpus, c["max_len"]) if full else corpus
            shapes = batch_shapes(lengths, c["batch"], 1000)
            flops = statistics.mean(step_flops(c["d"], c["layers"], c["ff"], args.vocab, c["batch"], t, r)
                                    for t, r in shapes)
            steps = args.steps or max(8, min(40, int(15 / max(flops / 120e9, 1e-3))))
            pad = 1 - statistics.mean(r / (c["batch"] * t) for t, r in shapes)
            for norm in norms.split(","):
                precisions = ["f32", "bf16"] if args.precision == "both" else [args.precision]
                ours_by = {p: [] for p in precisions}
                base_by = {p: [] for p in precisions}
                theirs, autocast = [], []
                for _ in range(args.rounds):
                    for precision in precisions:
                        if args.baseline:
                            base_by[precision].append(time_ablate(args.baseline, norm, c, steps, args.backend, ab_corpus, precision))
                        ours_by[precision].append(time_ablate(binary, norm, c, steps, args.backend, ab_corpus, precision))
                    cfg = dict(c, norm=norm, vocab=args.vocab, lengths=lengths, steps=steps, threads=args.threads)
                    res, torch_rss = run_worker("torch", cfg)
                    theirs.append(res["ms"])
                    if args.torch_bf16:
                        autocast.append(run_worker("torch", dict(cfg, autocast=True))[0]["ms"])
                t = statistics.median(theirs)
                peak = (run_worker("peak", dict(c, vocab=args.vocab, threads=args.threads))[0]["gflops"]
                        if args.peak else None)
                for precision, ours in ours_by.items():
                    a = statistics.median(ours)
                    ab_rss = ablate_rss(binary, bench_args(norm, c, 4, args.backend, ab_corpus, precision))
                    row = dict(c, **case, norm=norm, precision=precision, steps=steps, padding=pad, gflop=flops / 1e9,
                               ablate_ms=a, torch_ms=t, ratio=a / t, ablate_gflops=flops / a / 1e6,
                               torch_gflops=flops / t / 1e6, ablate_rss=ab_rss, torch_rss=torch_rss,
                               rounds=[(round(x, 1), round(y, 1)) for x, y in zip(ours, theirs)])
                    if peak is not None:
                        row["peak_gflops"] = peak
                    if args.baseline:
                        base = base_by[precision]
                        row["baseline_ms"] = statistics.median(base)
                        row["baseline_rounds"] = [round(x, 1) for x in base]
                    if autocast:
                        row["torch_bf16_ms"] = statistics.median(autocast)
                        row["torch_bf16_rounds"] = [round(x, 1) for x in autocast]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            if full:
                os.unlink(ab_corpus)
    finally:
        if load:
            load.kill()
    import torch  # only for its version in the table's caption
    print(f"\ntorch {torch.__version__}, {args.threads} threads (PyTorch in float32); ablate backend {args.backend}, "
          f"{'baseline ' + args.baseline + ', ' if args.baseline else ''}"
          f"probes off; "
          f"{'' if args.targets else 'full batches; ' if args.full else 'padded batches; '}"
          f"{'with one core kept busy; ' if args.background_load else ''}"
          f"medians over the second half of the steps, then over {args.rounds} alternating rounds")
    head = "| norm | ablate products | d | layers | heads | ff | max len | padding | GFLOP/step | ablate ms | PyTorch ms | ratio | ablate GFLOP/s | PyTorch GFLOP/s | peak RSS ablate / PyTorch MiB |"
    if args.peak:
        head += " torch SGEMM GFLOP/s |"
    if args.torch_bf16:
        head += " PyTorch bf16 autocast ms | ratio to it |"
    if args.baseline:
        head += " baseline ms | ratio to baseline | baseline to PyTorch |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['norm']} | {r['precision']} | {r['d']} | {r['layers']} | {r['heads']} | {r['ff']} | {r['max_len']} | "
                f"{r['padding']:.0%} | {r['gflop']:.1f} | {r['ablate_ms']:.1f} | {r['torch_ms']:.1f} | "
                f"{r['ratio']:.2f} | {r['ablate_gflops']:.0f} | {r['torch_gflops']:.0f} | "
                f"{r['ablate_rss']:.0f} / {r['torch_rss']:.0f} |")
        if args.peak:
            line += f" {r['peak_gflops']:.0f} |"
        if args.torch_bf16:
            line += f" {r['torch_bf16_ms']:.1f} | {r['ablate_ms'] / r['torch_bf16_ms']:.2f} |"
        if args.baseline:
            line += (f" {r['baseline_ms']:.1f} | {r['ablate_ms'] / r['baseline_ms']:.2f} | "
                     f"{r['baseline_ms'] / r['torch_ms']:.2f} |")
        print(line)
    if args.targets:
        print("\n| case | norm | ablate ms | PyTorch ms | ratio | target | met |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['case']} | {r['norm']} | {r['ablate_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f} | "
                  f"<= {r['target']} | {'yes' if r['ratio'] <= r['target'] else 'no'} |")


if __name__ == "__main__":
    main()
