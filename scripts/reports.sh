#!/usr/bin/env bash
# Regenerates every committed report from the results of the shipped studies.
# Run the studies first (ablate run experiments/<study>.toml); finished runs are found by id in results/.
set -euo pipefail
cd "$(dirname "$0")/.."
for study in experiments/*.toml; do
    name=$(basename "$study" .toml)
    cargo run --quiet --bin ablate -- report "$study" --out "reports/$name"
done
