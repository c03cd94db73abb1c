#!/usr/bin/env bash
# The GPU check: one command that turns a lent GPU machine into measured numbers, within a hard time
# limit of its own (default 290 s). It needs no Rust: it runs the ablate binary of the bundle that
# scripts/gpu-bundle.sh made (gpu-bundle/ablate-gpu.tar.xz, unpacked into a temporary folder), or
# --binary PATH.
#
#   scripts/gpu-check.sh [--allow-software-adapter] [--tiny] [--budget SECONDS] [--binary PATH] [--out DIR]
#
# In order, each step under its own time cap and the time left:
#   1. the machine: kernel, glibc, GPUs (nvidia-smi), Python and torch; Vulkan from the bundle's loader
#      and, where present, NVIDIA's ICD manifest; NVRTC searched in the Python packages;
#   2. every backend the binary may have: `ablate gpu-check` names the adapter and refuses a software one
#      (lavapipe, llvmpipe, SwiftShader: "software adapter", exit 5) unless --allow-software-adapter;
#      then every norm a few steps on the GPU against ndarray (the tolerances of tests/parity.rs);
#   3. benches/compare_pytorch_gpu.py at the default and the paper size (--tiny: the tiny size only):
#      ablate and PyTorch (CUDA) side by side, ms/step, tokens/s, TFLOP/s against the float32 peak;
#   4. with the time left, the paper-width model (d 512, 6 blocks, 4096-token batches, the paper's
#      optimizer) with plain BatchNorm and with the authors' (scaled-batch), half the time each, stopped
#      by SIGINT like Ctrl-C: real runs, as many updates as fit, probes every step.
# Everything comes back as at most 8 files, flat, none over 15 MiB: gpu-check.md (the summary) and
# .tar.xz archives (logs and tables; one per paper-width run, probes thinned if it would not fit).
# They go to --out, else $OUT when set, else ./gpu-check-out. Exit status: 0 when the adapter is a GPU
# (or allowed) and parity held; 5 for a refused software adapter; 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAX_FILES=8
MAX_FILE_BYTES=${GPU_CHECK_MAX_FILE_BYTES:-$((15 * 1024 * 1024))}
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json

log() { echo "gpu-check: $*" >&2; }

# Seconds left before the deadline ($DEADLINE, seconds since the epoch).
left() { echo $((DEADLINE - $(date +%s))); }

# step NAME CAP CMD...: runs CMD with at most CAP seconds and never past the deadline less the packing
# reserve; SIGINT first (ablate saves its run), SIGKILL 15 s later. Output goes to $WORK/NAME.log.
step() {
    local name=$1 cap=$2
    shift 2
    local t
    t=$(($(left) - RESERVE))
    [ "$cap" -lt "$t" ] && t=$cap
    if [ "$t" -lt 5 ]; then
        echo "skipped: no time left" >"$WORK/$name.log"
        log "$name: skipped (no time left)"
        return 124
    fi
    log "$name (at most ${t}s)"
    timeout -s INT -k 15 "$t" "$@" >"$WORK/$name.log" 2>&1
}

# The bundle's binary, unpacked into $1 (or --binary); prints its path.
unpack_bundle() {
    local dest=$1 bundle=${GPU_CHECK_BUNDLE:-$ROOT/gpu-bundle/ablate-gpu.tar.xz}
    if [ ! -f "$bundle" ]; then
        echo "no bundle at $bundle: run scripts/gpu-bundle.sh on the build machine (or give --binary)" >&2
        return 1
    fi
    mkdir -p "$dest" && tar -C "$dest" -xJf "$bundle" || return 1
    echo "$dest/ablate"
}

# The folder of libnvrtc among the Python packages (nvidia/cuda_nvrtc/lib), or nothing.
find_nvrtc() {
    local dirs=() d lib
    while IFS= read -r d; do dirs+=("$d"); done < <(
        python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null
    )
    for d in "${dirs[@]}" ${GPU_CHECK_EXTRA_SITE:-}; do
        for lib in "$d"/nvidia/cuda_nvrtc/lib/libnvrtc.so*; do
            if [ -e "$lib" ]; then
                dirname "$lib"
                return 0
            fi
        done
    done
    return 1
}

# Vulkan: the bundle's loader and NVIDIA's ICD manifest where they exist.
setup_vulkan() {
    local bindir=$1
    if [ -e "$bindir/lib/libvulkan.so.1" ]; then
        export LD_LIBRARY_PATH="$bindir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "Vulkan loader: the bundle's ($bindir/lib/libvulkan.so.1)"
    else
        echo "Vulkan loader: the system's"
    fi
    if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f "$NVIDIA_ICD" ]; then
        export VK_ICD_FILENAMES="$NVIDIA_ICD" VK_DRIVER_FILES="$NVIDIA_ICD"
        [ -d /usr/local/nvidia/lib64 ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/usr/local/nvidia/lib64"
        echo "Vulkan driver: $NVIDIA_ICD"
    else
        echo "Vulkan driver: ${VK_ICD_FILENAMES:-found by the loader}"
    fi
}

# thin_probes FILE K: keeps the header and the rows whose step (first column) is a multiple of K.
thin_probes() {
    awk -F, -v k="$2" 'NR == 1 || $1 % k == 0' "$1" >"$1.thin" && mv "$1.thin" "$1"
}

# pack_run DIR ARCHIVE: a run folder as .tar.xz, its probes thinned (every 2nd, 4th, ... step) until
# the archive fits in MAX_FILE_BYTES.
pack_run() {
    local dir=$1 archive=$2 k=1
    while :; do
        tar -C "$(dirname "$dir")" -cJf "$archive" "$(basename "$dir")" || return 1
        [ "$(stat -c %s "$archive")" -le "$MAX_FILE_BYTES" ] && break
        if [ ! -f "$dir/probes.csv" ] || [ "$k" -ge 4096 ]; then
            echo "cannot make $archive fit in $MAX_FILE_BYTES bytes" >&2
            return 1
        fi
        k=$((k * 2))
        thin_probes "$dir/probes.csv" "$k"
        echo "probes kept at the steps divisible by $k, to fit" >>"$dir/THINNED"
    done
}

# check_returned DIR: what comes back must be at most MAX_FILES plain files, flat, each small enough.
check_returned() {
    local dir=$1 n=0 f
    for f in "$dir"/* "$dir"/.[!.]*; do
        [ -e "$f" ] || continue
        if [ -d "$f" ] || [ ! -f "$f" ]; then
            echo "not a plain file: $f" >&2
            return 1
        fi
        if [ "$(stat -c %s "$f")" -gt "$MAX_FILE_BYTES" ]; then
            echo "over $MAX_FILE_BYTES bytes: $f" >&2
            return 1
        fi
        n=$((n + 1))
    done
    if [ "$n" -gt "$MAX_FILES" ]; then
        echo "$n files, at most $MAX_FILES come back" >&2
        return 1
    fi
}

# The paper-width run's options (or the tiny model's, for CI).
paper_args() {
    if [ "$TINY" = 1 ]; then
        echo "--d-model 16 --layers 1 --heads 2 --d-ff 32 --vocab-size 200 --batch-size 8 --max-len 12 --steps 20 --warmup-steps 4 --eval-every 10 --eval-batches 2"
    else
        echo "--d-model 512 --layers 6 --heads 4 --d-ff 1024 --max-len 128 --vocab-size 10000 --max-tokens 4096 --bucket-pool 16 --steps 50000 --warmup-steps 8000 --lr 0.0015 --adam-beta1 0.9 --adam-beta2 0.98 --dropout 0.3 --eval-every 500 --eval-batches 10 --pn-backward-means all --checkpoint-every 0"
    fi
}

source "$ROOT/scripts/gpu-check-steps.sh"

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
