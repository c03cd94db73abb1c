#!/usr/bin/env bash
# Builds the GPU bundle on the build machine: a release ablate binary with the wgpu backend, with the
# Vulkan loader (Debian's libvulkan1) beside it, packed as gpu-bundle/ablate-gpu.tar.xz (git ignores
# the folder; name it in the device tool's `carry`). It runs where no Rust is installed:
# scripts/gpu-check.sh unpacks it into a temporary folder and runs it from there.
#
#   scripts/gpu-bundle.sh [--binary PATH]    # --binary: bundle an already built binary (no cargo build)
#
# Prints the tracked tree's size, the bundle's and their sum, and fails when the sum is 60 MiB or more
# (the device machine takes 64 MiB of working tree, carried folders included). The binary is xz-packed
# (103 MiB stripped, about 18 MiB packed): unpacked it would not fit beside the tracked tree.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIMIT_BYTES=$((60 * 1024 * 1024))

# The installed Vulkan loader (Debian's libvulkan1): the real file behind libvulkan.so.1.
vulkan_loader() {
    local f
    f=$(dpkg -L libvulkan1 2>/dev/null | grep -m1 '/libvulkan\.so\.1$' || true)
    [ -z "$f" ] && f=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 /{print $NF; exit}')
    if [ -z "$f" ] || [ ! -e "$f" ]; then
        echo "no Vulkan loader installed: apt-get install libvulkan1" >&2
        return 1
    fi
    readlink -f "$f"
}

# The newest glibc symbol version a binary needs (the machine that runs it must have at least that).
glibc_needed() {
    objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1
}

# stage BINARY DIR: the binary (stripped), lib/libvulkan.so.1 and BUILD (what it is) in DIR.
stage() {
    local binary=$1 dir=$2 loader
    mkdir -p "$dir/lib"
    cp "$binary" "$dir/ablate"
    strip "$dir/ablate" 2>/dev/null || true
    loader=$(vulkan_loader)
    cp "$loader" "$dir/lib/libvulkan.so.1"
    {
        echo "ablate $("$dir/ablate" --version | sed 's/^ablate //'), built $(date -u +%F) on $(uname -m)"
        echo "Vulkan loader: $(dpkg-query -W -f '${Package} ${Version}' libvulkan1 2>/dev/null || basename "$loader")"
        echo "needs glibc: $(glibc_needed "$dir/ablate")"
    } >"$dir/BUILD"
}

# pack DIR ARCHIVE: DIR's contents as .tar.xz.
pack() {
    # shellcheck disable=SC2086 # GPU_BUNDLE_XZ is a list of xz options (the tests use a fast level)
    tar -C "$1" -cf - . | xz ${GPU_BUNDLE_XZ:--9e} -T0 >"$2"
}

# Bytes of the files git tracks.
tree_bytes() {
    git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 stat -c %s 2>/dev/null) | awk '{s += $1} END {print s + 0}'
}

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }

# report TREE BUNDLE: prints the sizes; fails when their sum reaches the limit.
report() {
    local tree=$1 bundle=$2 sum=$(($1 + $2))
    echo "tracked tree: $(mib "$tree") ($tree bytes)"
    echo "bundle:       $(mib "$bundle") ($bundle bytes)"
    echo "together:     $(mib "$sum") of at most $(mib "$LIMIT_BYTES")"
    if [ "$sum" -ge "$LIMIT_BYTES" ]; then
        echo "gpu-bundle: tracked tree and bundle together are over the limit" >&2
        return 1
    fi
}

main() {
    local binary=""
    while [ $# -gt 0 ]; do
        case $1 in
        --binary) binary=${2:-}; shift ;;
        *) echo "usage: scripts/gpu-bundle.sh [--binary PATH]" >&2; exit 2 ;;
        esac
        shift
    done
    if [ -z "$binary" ]; then
        (cd "$ROOT" && cargo build --release --features wgpu --bin ablate)
        binary="${CARGO_TARGET_DIR:-$ROOT/target}/release/ablate"
    fi
    if [ ! -x "$binary" ]; then
        echo "gpu-bundle: $binary is not an executable file" >&2
        exit 1
    fi
    local out="$ROOT/gpu-bundle"
    BUNDLE_TMP=$(mktemp -d)
    trap 'rm -rf "$BUNDLE_TMP"' EXIT
    stage "$binary" "$BUNDLE_TMP/stage"
    mkdir -p "$out"
    pack "$BUNDLE_TMP/stage" "$out/ablate-gpu.tar.xz"
    cp "$BUNDLE_TMP/stage/BUILD" "$out/BUILD"
    cat "$out/BUILD"
    report "$(tree_bytes)" "$(du -cb "$out"/* | tail -1 | cut -f1)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
