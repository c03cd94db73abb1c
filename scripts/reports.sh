#!/usr/bin/env bash
# Regenerates the report of every shipped study that has results.
# Run the studies first (ablate run experiments/<study>.toml); finished runs are found by id in results/.
# A study without results is skipped with a note; a committed report (reports/<study>/) whose study has
# no results, or only some of them, fails the script and is kept, so a stale report is never mistaken
# for a fresh one and a partial one never replaces it.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for study in experiments/*.toml; do
    name=$(basename "$study" .toml)
    if out=$(cargo run --quiet --bin ablate -- report "$study" --out "reports/$name.new" 2>&1); then
        if [ -d "reports/$name" ] && grep -q "have no results" <<<"$out"; then
            # some of the study's runs are missing: a partial report never replaces a committed one
            rm -rf "reports/$name.new"
            echo "reports/$name: not regenerated: runs missing: $out" >&2
            status=1
            continue
        fi
        rm -rf "reports/$name" && mv "reports/$name.new" "reports/$name"
        echo "$out"
    else
        rm -rf "reports/$name.new"
        if [ -d "reports/$name" ]; then
            echo "reports/$name: not regenerated: $out" >&2
            status=1
        else
            echo "$name: skipped ($out)"
        fi
    fi
done
exit $status
