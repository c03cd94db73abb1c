#!/usr/bin/env bash
# One task of a Slurm job array runs one shard of a study. Submit, for an 8-way split:
#
#   sbatch --array=0-7 --cpus-per-task=8 --time=24:00:00 scripts/slurm-array.sh experiments/scale-ladder.toml results
#
# (`--array=1-8` works as well: the shard base follows the array's first index.) Each task trains
# the runs dealt to its shard (round-robin in grid order, so shards differ by at most one run)
# into the results folder; finished runs are skipped and interrupted ones continue from their last
# checkpoint, so a resubmitted array only does what is left. Two minutes before the time limit Slurm
# sends SIGTERM (--signal below): the running runs save a checkpoint and stop. The log shows a plain
# line per run every 30 s (step, loss, lr, ms/step, tokens/s, ETA), each checkpoint, and a line per
# finished run.
# Afterwards: `ablate report experiments/scale-ladder.toml --results results --out reports/...`.
# Arguments after the results folder go to `ablate run` (e.g. --jobs 2, --dry-run). The binary is
# $ABLATE if set, else `ablate` on the PATH (`cargo install --path .` puts it there).
#SBATCH --job-name=ablate
#SBATCH --output=ablate-%A_%a.log
#SBATCH --signal=B:TERM@120
set -euo pipefail
study=${1:?usage: sbatch --array=0-N scripts/slurm-array.sh STUDY.toml [RESULTS_DIR] [ablate run options]}
out=${2:-results}
shift $(( $# >= 2 ? 2 : 1 ))
task=${SLURM_ARRAY_TASK_ID:?not inside a Slurm job array (SLURM_ARRAY_TASK_ID is unset)}
count=${SLURM_ARRAY_TASK_COUNT:?SLURM_ARRAY_TASK_COUNT is unset}
base=${SLURM_ARRAY_TASK_MIN:-0}
exec "${ABLATE:-ablate}" run "$study" --results "$out" --shard "$task/$count" --shard-base "$base" "$@"
