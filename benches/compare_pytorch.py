#!/usr/bin/env python3
"""Side-by-side step time: ablate (Burn, flex by default) vs the same model in PyTorch, one invocation.

The PyTorch model mirrors ablate's default text model: token embedding x sqrt(d) + learned positions,
2 pre-norm blocks (norm -> causal self-attention with key padding mask -> dropout -> residual;
norm -> Linear(d, 4d) -> GELU -> dropout -> Linear(4d, d) -> dropout -> residual), final norm, LM head
tied to the embedding, computed on real tokens only, cross-entropy, Adam (0.9, 0.98), global
gradient-norm clip 1.0. Batches are 32 sentences of the shipped corpus, padded to the longest (max 64),
as ablate draws them, so the padding fraction matches.

Usage (from the repository root, torch installed, e.g. in a virtual environment):
    python3 benches/compare_pytorch.py [--steps 40] [--rounds 3] [--threads 2] [--backend ndarray]
Each round runs `cargo run --bin ablate -- bench --norms layer,batch,power --steps N`, then times
PyTorch with the same shapes; rounds alternate so that both see the same machine (a shared VM's speed
drifts by 10-20 % over minutes). It prints every round and the medians over rounds, with the ratio
ablate / PyTorch for each norm.
"""
import argparse
import math
import random
import re
import statistics
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class MaskedBatchNorm(nn.Module):
    """BatchNorm over all batch x time positions, padding included (what ablate's `batch` does)."""

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
    def __init__(self, kind, vocab=5000, d=128, layers=2, heads=4, ff=512, max_len=64, dropout=0.1):
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
        x = self.tok(tokens) * self.scale + self.pos(torch.arange(t)).unsqueeze(0)
        x = self.drop(x)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        for blk in self.blocks:
            x = blk(x, causal, ~real)
        h = self.final(x)[real]
        logits = h @ self.tok.weight.t()
        return F.cross_entropy(logits, targets[real])


def batches(corpus, batch, max_len, vocab, seed=1):
    lengths = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            n = len(line.split())
            if n:
                lengths.append(min(n + 1, max_len))
    rng = random.Random(seed)
    while True:
        ls = [rng.choice(lengths) for _ in range(batch)]
        t = max(ls)
        tokens = torch.randint(4, vocab, (batch, t))
        real = torch.zeros(batch, t, dtype=torch.bool)
        for i, n in enumerate(ls):
            real[i, :n] = True
        yield tokens.masked_fill(~real, 0), torch.roll(tokens, -1, 1), real


def time_torch(kind, steps, corpus):
    torch.manual_seed(1)
    model = LM(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-8)
    it = batches(corpus, 32, 64, 5000)
    times = []
    for _ in range(steps):
        tokens, targets, real = next(it)
        t0 = time.perf_counter()
        loss = model(tokens, targets, real)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[steps // 2:])


def time_ablate(steps, backend):
    cmd = ["cargo", "run", "--quiet", "--bin", "ablate", "--", "bench", "--norms", "layer,batch,power",
           "--steps", str(steps), "--backend", backend]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 2 and parts[1] == "on":
            result[parts[0]] = float(parts[2])
    return result, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", default="data/austen.sents.txt")
    ap.add_argument("--backend", default="flex", help="ablate's CPU backend: flex (default) or ndarray")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ours = {"layer": [], "batch": [], "power": []}
    theirs = {"layer": [], "batch": []}
    for r in range(args.rounds):
        ablate, table = time_ablate(args.steps, args.backend)
        if r == 0:
            print(table)
        for k in ours:
            ours[k].append(ablate[k])
        for k in theirs:
            theirs[k].append(time_torch(k, args.steps, args.corpus))
        print(f"round {r + 1}: " + ", ".join(
            f"{k} ablate {ours[k][-1]:.1f} / pytorch {theirs[k][-1]:.1f} ms" for k in theirs))
    med = statistics.median
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ablate backend {args.backend}; "
          f"medians over the second half of {args.steps} steps, then over {args.rounds} rounds")
    print(f"{'norm':<8} {'ablate ms':>10} {'pytorch ms':>11} {'ratio':>7}")
    for k in theirs:
        print(f"{k:<8} {med(ours[k]):>10.1f} {med(theirs[k]):>11.1f} {med(ours[k]) / med(theirs[k]):>7.2f}")
    print(f"power / layer (ablate): {med(ours['power']) / med(ours['layer']):.2f}")


if __name__ == "__main__":
    main()
