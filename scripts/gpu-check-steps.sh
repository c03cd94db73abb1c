# The steps of scripts/gpu-check.sh (sourced by it; its helpers and variables are defined there).

# usage PROBLEM: one line, then exit 2.
usage() {
    echo "gpu-check: $1 (usage: scripts/gpu-check.sh [--allow-software-adapter] [--tiny] [--budget SECONDS] [--binary PATH] [--out DIR])" >&2
    exit 2
}

parse_args() {
    ALLOW=0 TINY=0 BUDGET=290 BINARY="" DEST="${OUT:-$ROOT/gpu-check-out}"
    while [ $# -gt 0 ]; do
        case $1 in
        --allow-software-adapter) ALLOW=1 ;;
        --tiny) TINY=1 ;;
        --budget) BUDGET=${2:-}; shift ;;
        --binary) BINARY=${2:-}; shift ;;
        --out) DEST=${2:-}; shift ;;
        -h | --help) sed -n '2,/^set -uo/p' "$ROOT/scripts/gpu-check.sh" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage "unknown option $1" ;;
        esac
        shift
    done
    # absolute: the steps run from the repository's root
    DEST=$(realpath -m "$DEST")
    [ -n "$BINARY" ] && BINARY=$(realpath -m "$BINARY")
    case $BUDGET in '' | *[!0-9]*) echo "gpu-check: --budget expects whole seconds, got '$BUDGET'" >&2; exit 2 ;; esac
    if [ "$BUDGET" -lt 30 ] || [ "$BUDGET" -gt 3600 ]; then
        echo "gpu-check: --budget must be 30 to 3600 seconds, got $BUDGET" >&2
        exit 2
    fi
}

# The machine, Vulkan and NVRTC, into $WORK/env.txt; the summary's first section.
describe_machine() {
    {
        echo "date: $(date -u +%FT%TZ)"
        echo "kernel: $(uname -srm)"
        echo "glibc: $(ldd --version 2>/dev/null | head -1)"
        echo "CPU cores: $(nproc)"
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /'
        echo "python: $(python3 --version 2>&1)"
        echo "torch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
        setup_vulkan "$(dirname "$ABLATE")"
        local nvrtc
        if nvrtc=$(find_nvrtc); then
            echo "NVRTC: $nvrtc (found among the Python packages; this build has no CUDA backend to use it)"
        else
            echo "NVRTC: not found among the Python packages (nvidia/cuda_nvrtc/lib)"
        fi
        echo "ablate: $("$ABLATE" --version 2>&1 | head -1)"
        [ -f "$(dirname "$ABLATE")/BUILD" ] && sed 's/^/bundle: /' "$(dirname "$ABLATE")/BUILD"
    } >"$WORK/env.txt" 2>&1
    printf '## Machine\n\n```\n%s\n```\n\n' "$(cat "$WORK/env.txt")" >>"$SUMMARY"
}

# Every backend: adapter and parity. Sets GPU_BACKEND to the first that passed.
check_backends() {
    local b status allow=()
    [ "$ALLOW" = 1 ] && allow=(--allow-software-adapter)
    GPU_BACKEND=""
    printf '## Backends and parity (every norm, a few steps, GPU against ndarray, tolerances of tests/parity.rs)\n\n' >>"$SUMMARY"
    for b in wgpu cuda; do
        step "adapter-$b" 60 "$ABLATE" gpu-check --backend "$b" --adapter-only "${allow[@]}"
        status=$?
        if [ "$status" = 5 ]; then
            REFUSED=1
            printf -- '- %s: refused, %s\n' "$b" "$(grep -m1 'software adapter' "$WORK/adapter-$b.log")" >>"$SUMMARY"
            continue
        elif [ "$status" != 0 ]; then
            printf -- '- %s: did not work (exit %s): %s\n' "$b" "$status" "$(tail -n 1 "$WORK/adapter-$b.log")" >>"$SUMMARY"
            continue
        fi
        printf -- '- %s: %s\n' "$b" "$(grep -m1 '^adapter:' "$WORK/adapter-$b.log")" >>"$SUMMARY"
        # --tiny (CI, on a software adapter, where tests/parity.rs checks every norm): two norms
        local subset=()
        [ "$TINY" = 1 ] && subset=(--norms layer,scaled-batch --steps 3)
        step "parity-$b" $((BUDGET / 2)) "$ABLATE" gpu-check --backend "$b" "${allow[@]}" "${subset[@]}" --out "$WORK/parity-$b"
        status=$?
        printf '\n' >>"$SUMMARY"
        if [ -f "$WORK/parity-$b/parity.md" ]; then
            cat "$WORK/parity-$b/parity.md" >>"$SUMMARY"
        else
            grep '^|' "$WORK/parity-$b.log" >>"$SUMMARY"
        fi
        if [ "$status" = 0 ]; then
            printf '\nparity on %s: every run agrees\n\n' "$b" >>"$SUMMARY"
            [ -z "$GPU_BACKEND" ] && GPU_BACKEND=$b
        else
            PARITY_FAILED=1
            printf '\nparity on %s: FAILED (exit %s): %s\n\n' "$b" "$status" "$(tail -n 1 "$WORK/parity-$b.log")" >>"$SUMMARY"
        fi
    done
}

# ablate beside PyTorch at each size.
benchmarks() {
    local size sizes=(default paper) adapter
    [ "$TINY" = 1 ] && sizes=(tiny)
    adapter=$(sed -n 's/^adapter: \([^|]*\) |.*/\1/p' "$WORK/adapter-$GPU_BACKEND.log" | head -1)
    printf '## Step time: ablate (%s) and PyTorch on the same GPU\n\n' "$GPU_BACKEND" >>"$SUMMARY"
    for size in "${sizes[@]}"; do
        if step "bench-$size" $((BUDGET * 3 / 10)) python3 "$ROOT/benches/compare_pytorch_gpu.py" --ablate "$ABLATE" \
            --backend "$GPU_BACKEND" --size "$size" --adapter "$adapter" \
            --md "$WORK/bench-$size.md" --json "$WORK/bench-$size.json"; then
            cat "$WORK/bench-$size.md" >>"$SUMMARY"
        else
            printf 'size %s: did not finish: %s\n' "$size" "$(tail -n 1 "$WORK/bench-$size.log")" >>"$SUMMARY"
        fi
        printf '\n' >>"$SUMMARY"
    done
}

# The paper-width runs, half the time left each, stopped by SIGINT.
paper_width() {
    local norm t i=0 run
    printf '## Paper-width runs (stopped by the time limit)\n\n' >>"$SUMMARY"
    printf '| norm | updates | last train loss | median ms/step | tokens/s | status |\n|---|---|---|---|---|---|\n' >>"$SUMMARY"
    for norm in batch scaled-batch; do
        t=$((($(left) - RESERVE) / (2 - i)))
        i=$((i + 1))
        # shellcheck disable=SC2046 # paper_args is a list of options
        step "paper-$norm" "$t" "$ABLATE" --quiet --backend "$GPU_BACKEND" --norm "$norm" $(paper_args) \
            --results "$WORK/paper-$norm"
        run=$(find "$WORK/paper-$norm" -mindepth 2 -maxdepth 2 -name summary.json 2>/dev/null | head -1)
        if [ -n "$run" ]; then
            python3 - "$run" "$norm" >>"$SUMMARY" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
f = lambda x, p: "n/a" if x is None else format(x, p)
print(f"| {sys.argv[2]} | {s['steps_completed']} of {s['steps_planned']} | {f(s.get('final_train_loss'), '.4f')} | "
      f"{f(s.get('median_step_ms'), '.1f')} | {f(s.get('tokens_per_s'), '.0f')} | {s['status']} |")
EOF
        else
            printf '| %s | 0 | n/a | n/a | n/a | no run folder: %s |\n' "$norm" "$(tail -n 1 "$WORK/paper-$norm.log")" >>"$SUMMARY"
        fi
    done
    printf '\n' >>"$SUMMARY"
}

# The returned files: the summary, the logs and tables, one archive per paper-width run.
pack() {
    local d
    mkdir -p "$DEST" || return 1
    cp "$SUMMARY" "$DEST/gpu-check.md"
    for d in "$WORK"/paper-*/*/; do
        [ -d "$d" ] || continue
        rm -rf "$d/checkpoints"
        pack_run "${d%/}" "$DEST/$(basename "$(dirname "$d")").tar.xz" || return 1
    done
    tar -C "$WORK" --exclude='paper-*/*' -cJf "$DEST/check.tar.xz" . || return 1
    check_returned "$DEST"
}

main() {
    parse_args "$@"
    # the hard limit: a backstop over the steps' own caps, whatever hangs
    if [ -z "${GPU_CHECK_GUARDED:-}" ]; then
        GPU_CHECK_GUARDED=1 exec timeout -k 10 $((BUDGET + 30)) "$ROOT/scripts/gpu-check.sh" "$@"
    fi
    export XZ_OPT="${XZ_OPT:--T0 -6}"
    local start
    start=$(date +%s)
    DEADLINE=$((start + BUDGET)) RESERVE=30 REFUSED=0 PARITY_FAILED=0
    cd "$ROOT" || exit 1
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
    SUMMARY="$WORK/gpu-check.md"
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
    if [ -n "$BINARY" ]; then
        ABLATE=$BINARY
    else
        ABLATE=$(unpack_bundle "$WORK/bundle") || exit 1
        # the binary and its loader are not results
        trap 'rm -rf "$WORK/bundle"' EXIT
    fi
    if [ ! -x "$ABLATE" ]; then
        echo "gpu-check: $ABLATE is not an executable file" >&2
        exit 1
    fi
    printf '# GPU check\n\n%s, budget %s s%s.\n\n' "$(date -u +%FT%TZ)" "$BUDGET" \
        "$([ "$TINY" = 1 ] && echo ', tiny sizes')" >"$SUMMARY"
    describe_machine
    check_backends
    if [ -n "$GPU_BACKEND" ]; then
        benchmarks
        paper_width
    fi
    printf '\nWall time: %s s of the %s s budget.\n' "$(($(date +%s) - start))" "$BUDGET" >>"$SUMMARY"
    rm -rf "$WORK/bundle"
    pack || { echo "gpu-check: packing the results failed" >&2; exit 1; }
    log "wrote $(ls "$DEST" | tr '\n' ' ')to $DEST in $(($(date +%s) - start)) s"
    [ "$REFUSED" = 1 ] && [ -z "$GPU_BACKEND" ] && exit 5
    [ -n "$GPU_BACKEND" ] && [ "$PARITY_FAILED" = 0 ] && exit 0
    exit 1
}
