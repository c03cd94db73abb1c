#!/usr/bin/env python3
"""ablate's training step on a GPU backend beside the same model in PyTorch on the same GPU (CUDA),
with ms/step, tokens/s and achieved TFLOP/s against the device's float32 peak. The GPU sibling of
benches/compare_pytorch.py, whose model, FLOP count and PyTorch worker it reuses; it runs a given
ablate binary (no cargo: it runs where the bundle of scripts/gpu-bundle.sh runs).

Sizes (every batch full: every sentence --max-len tokens, so each step's FLOPs are exact):
    default  d 128, 2 blocks, 4 heads, FFN 512, 32 x 64 tokens, vocabulary 5000 (ablate's default model)
    paper    d 512, 6 blocks, 4 heads, FFN 1024, 32 x 128 = 4096 tokens, vocabulary 10000 (the paper's)
    tiny     d 16, 1 block, 2 heads, FFN 32, 8 x 12 tokens, vocabulary 200 (CI, on a software adapter)

The float32 peak divided by is the vendor's dense FP32 (non-tensor-core) figure for the GPU's name
(table PEAK_FP32 below, from NVIDIA's data sheets), or --peak-tflops. PyTorch runs in plain float32
(TF32 off), as ablate does; where torch or a CUDA device is missing, its column says why.

Usage:
    python3 benches/compare_pytorch_gpu.py --ablate BIN [--backend wgpu] [--size default|paper|tiny]
        [--norms layer,batch] [--steps N] [--adapter NAME] [--peak-tflops X] [--md FILE] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_pytorch as cp  # noqa: E402

SIZES = {
    "default": dict(d=128, layers=2, heads=4, ff=512, max_len=64, batch=32, vocab=5000, steps=40),
    "paper": dict(d=512, layers=6, heads=4, ff=1024, max_len=128, batch=32, vocab=10000, steps=30),
    "tiny": dict(d=16, layers=1, heads=2, ff=32, max_len=12, batch=8, vocab=200, steps=6),
}

# Dense float32 TFLOP/s without tensor cores, by a substring of the device's name (first match).
PEAK_FP32 = [
    ("H200", 67.0, "NVIDIA H200 data sheet (SXM): FP32 67 TFLOPS"),
    ("H100 NVL", 60.0, "NVIDIA H100 data sheet (NVL): FP32 60 TFLOPS"),
    ("H100 PCIe", 51.0, "NVIDIA H100 data sheet (PCIe): FP32 51 TFLOPS"),
    ("H100", 67.0, "NVIDIA H100 data sheet (SXM): FP32 67 TFLOPS"),
    ("A100", 19.5, "NVIDIA A100 data sheet: FP32 19.5 TFLOPS"),
    ("L40S", 91.6, "NVIDIA L40S data sheet: FP32 91.6 TFLOPS"),
    ("L4", 30.3, "NVIDIA L4 data sheet: FP32 30.3 TFLOPS"),
]


def peak_for(name, given):
    """(TFLOP/s, where the figure comes from) for a device name, or (None, why not)."""
    if given:
        return given, "--peak-tflops"
    for key, tflops, source in PEAK_FP32:
        if name and key.lower() in name.lower():
            return tflops, source
    return None, f"no float32 peak known for {name or 'this device'!r} (give --peak-tflops)"


def torch_status(device):
    """(usable, device name or why not) of PyTorch on `device`, asked in a separate process."""
    code = ("import torch, sys\n"
            f"d = {device!r}\n"
            "if d == 'cuda' and not torch.cuda.is_available(): print('no CUDA device visible to torch ' + torch.__version__); sys.exit(1)\n"
            "print(torch.cuda.get_device_name(0) + ' (torch ' + torch.__version__ + ')' if d == 'cuda' else 'cpu')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = (p.stdout.strip() or p.stderr.strip()).splitlines()
    return p.returncode == 0, (lines[-1] if lines else "torch failed")


def ablate_ms(binary, norm, c, steps, backend, corpus):
    """ablate bench's median ms/step (no probes), with the size's vocabulary."""
    args = cp.bench_args(norm, c, steps, backend, corpus, "f32") + ["--vocab-size", str(c["vocab"])]
    p = subprocess.run([binary] + args, capture_output=True, text=True, cwd=cp.ROOT)
    if p.returncode != 0:
        raise SystemExit(f"ablate bench failed: {p.stderr.strip()}")
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] == norm and parts[1] in ("on", "off"):
            return float(parts[2])
    raise SystemExit(f"no timing in ablate's output:\n{p.stdout}")


def rows_for(args, c):
    corpus = cp.full_corpus(os.path.join(cp.ROOT, "data/austen.sents.txt"), c["max_len"])
    try:
        steps = args.steps or c["steps"]
        tokens = c["batch"] * c["max_len"]
        flops = cp.step_flops(c["d"], c["layers"], c["ff"], c["vocab"], c["batch"], c["max_len"], tokens)
        usable, torch_dev = torch_status(args.torch_device)
        peak, peak_source = peak_for(args.adapter or (torch_dev if usable else ""), args.peak_tflops)
        rows = []
        for norm in args.norms.split(","):
            row = dict(size=args.size, norm=norm, backend=args.backend, steps=steps, gflop=flops / 1e9,
                       peak_tflops=peak, peak_source=peak_source, torch_device=torch_dev, torch_ok=usable,
                       **{k: c[k] for k in ("d", "layers", "heads", "ff", "max_len", "batch", "vocab")})
            ms = ablate_ms(args.ablate, norm, c, steps, args.backend, corpus)
            row.update(ablate_ms=ms, ablate_tokens_s=tokens / ms * 1e3, ablate_tflops=flops / ms / 1e9)
            if usable:
                cfg = dict(c, norm=norm, lengths=[c["max_len"]], steps=steps, threads=1,
                           device=args.torch_device)
                res, _ = cp.run_worker("torch", cfg)
                t = res["ms"]
                row.update(torch_ms=t, torch_tokens_s=tokens / t * 1e3, torch_tflops=flops / t / 1e9)
            rows.append(row)
            print(json.dumps(row), flush=True)
        return rows
    finally:
        os.unlink(corpus)


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def markdown(rows):
    if not rows:
        return ""
    r0 = rows[0]
    peak = r0["peak_tflops"]
    out = [f"Size {r0['size']}: d {r0['d']}, {r0['layers']} block(s), {r0['heads']} heads, FFN {r0['ff']}, "
           f"{r0['batch']} x {r0['max_len']} tokens (full batches), vocabulary {r0['vocab']}; "
           f"{r0['gflop']:.2f} GFLOP per step (3 x the forward products); median over the second half of "
           f"{r0['steps']} steps. Float32 peak: {fmt(peak, '.1f')} TFLOP/s ({r0['peak_source']}). "
           f"PyTorch: {r0['torch_device'] if r0['torch_ok'] else 'not run (' + r0['torch_device'] + ')'}.", "",
           "| norm | ablate backend | ablate ms/step | ablate tokens/s | ablate TFLOP/s | % of peak "
           "| PyTorch ms/step | PyTorch tokens/s | PyTorch TFLOP/s | % of peak | ablate / PyTorch |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pct = (lambda t: None if peak is None or t is None else 100 * t / peak)
        tt = r.get("torch_tflops")
        out.append(f"| {r['norm']} | {r['backend']} | {r['ablate_ms']:.2f} | {r['ablate_tokens_s']:.0f} | "
                   f"{r['ablate_tflops']:.3f} | {fmt(pct(r['ablate_tflops']), '.1f')} | "
                   f"{fmt(r.get('torch_ms'), '.2f')} | {fmt(r.get('torch_tokens_s'), '.0f')} | {fmt(tt, '.3f')} | "
                   f"{fmt(pct(tt), '.1f')} | "
                   f"{fmt(r['ablate_ms'] / r['torch_ms'] if r.get('torch_ms') else None, '.2f')} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablate", required=True, help="the ablate binary (e.g. from the GPU bundle)")
    ap.add_argument("--backend", default="wgpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--norms", default="layer,batch")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: the size's)")
    ap.add_argument("--torch-device", default="cuda")
    ap.add_argument("--adapter", default="", help="the GPU's name, for its float32 peak")
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--md", help="also write the table to this file")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if not os.access(args.ablate, os.X_OK):
        raise SystemExit(f"--ablate {args.ablate}: not an executable file")
    rows = rows_for(args, SIZES[args.size])
    table = markdown(rows)
    print(table)
    if args.md:
        with open(args.md, "w", encoding="utf-8") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
