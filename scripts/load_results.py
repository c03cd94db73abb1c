#!/usr/bin/env python3
"""Load ablate results folders into pandas data frames, with one call.

    import sys; sys.path.insert(0, "scripts")
    from load_results import load_results

    r = load_results("results")            # a results folder, or a list of them (shards)
    r.runs    # one row per run: run_id, every config.toml key, the summary (status, final metrics,
              # speed, build) and, where a runs-<study>.csv lists the run, its study's name
    r.steps   # steps.csv of every run, with a run_id column: loss, lr, grad_norm, tokens, ...
    r.probes  # probes.csv of every run (long format): run_id, step, layer, name, value
    r.eval    # eval.csv of every run: eval_loss, eval_ppl (text), eval_accuracy (images), ...
    r.problems  # one line per damaged file or cell, naming it: the rest still loads

    # e.g. the first layer's batch-variance distance of every BatchNorm run, one column per run:
    p = r.probes.merge(r.runs[["run_id", "norm", "task"]], on="run_id")
    p[p.name.eq("dist_var")].pivot_table(index="step", columns="run_id", values="value")

Numbers that do not apply to a row (the perplexity of an image run) are NaN, so the frames of
text and image runs concatenate with float columns. Run folders are the folders holding a
config.toml; a folder still running or cut short loads with the rows it has. Needs pandas.

From the command line, `python3 scripts/load_results.py results` prints what it loaded;
`--check` also verifies the frames against the files (used by the tests). It exits with 1 when a file
or a cell was damaged (each named on stderr), after loading everything else.
"""
import argparse
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

try:
    import pandas as pd
except ImportError:
    sys.exit(
        "load_results.py needs pandas: python3 -m pip install -r scripts/requirements.txt"
    )


@dataclass
class Results:
    runs: pd.DataFrame
    steps: pd.DataFrame
    probes: pd.DataFrame
    eval: pd.DataFrame
    # one line per damaged file or cell, naming it; the rest loads regardless
    problems: list


def run_folders(folder):
    """The run folders in a results folder (or the folder itself when it is one run)."""
    folder = Path(folder)
    if (folder / "config.toml").is_file():
        return [folder]
    return sorted(p for p in folder.iterdir() if (p / "config.toml").is_file())


def _flat(prefix, value, out):
    """Nested JSON objects as `a.b` columns; lists as their text."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else value


# the columns of ablate's CSVs that hold text; every other column is a number
TEXT_COLUMNS = ("run_id", "layer", "name")


def _csv(path, run_id, problems):
    """A CSV's complete rows, numbers as numbers. A damaged file or cell is named in `problems`:
    an unreadable file is left out, a cell that is not a number becomes NaN."""
    # complete rows only: a row cut short by an interrupted write is dropped, as `ablate report` does
    if not path.is_file() or path.stat().st_size == 0:
        return None
    from io import StringIO

    try:
        text = path.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        if not text:
            # a file whose header is still being written: a run that has only just started
            return None
        frame = pd.read_csv(StringIO(text))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problems.append(f"{path}: not read ({type(e).__name__}: {str(e).strip().splitlines()[0]})")
        return None
    if not len(frame):
        # the header alone (a LayerNorm run's probes.csv, a run before its first evaluation)
        return frame
    for column in frame.columns:
        if column in TEXT_COLUMNS or pd.api.types.is_numeric_dtype(frame[column]):
            continue
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][numbers.isna() & frame[column].notna()]
        if len(bad):
            problems.append(
                f"{path}: column {column!r}: {len(bad)} cell(s) not a number "
                f"(first {bad.iloc[0]!r} on line {bad.index[0] + 2}); read as NaN"
            )
        frame[column] = numbers
    frame.insert(0, "run_id", run_id)
    return frame


def load_results(folders):
    """Loads every run of one or several results folders; see the module's documentation."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    runs, steps, probes, evals = [], [], [], []
    problems = []
    studies = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a results folder")
        for table in sorted(folder.glob("runs-*.csv")):
            study = table.stem[len("runs-"):]
            try:
                for run_id in pd.read_csv(table, usecols=["id"])["id"]:
                    studies[run_id] = study
            except (OSError, UnicodeDecodeError, ValueError) as e:
                problems.append(f"{table}: not read ({type(e).__name__}); its runs have no study name")
        for d in run_folders(folder):
            row = {"run_id": d.name, "folder": str(d)}
            try:
                row.update(tomllib.loads((d / "config.toml").read_text()))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                problems.append(f"{d / 'config.toml'}: not read ({type(e).__name__}); the run is left out")
                continue
            row = {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            summary = d / "summary.json"
            if summary.is_file():
                flat = {}
                try:
                    _flat("", json.loads(summary.read_text()), flat)
                except (OSError, UnicodeDecodeError, ValueError) as e:
                    problems.append(f"{summary}: not read ({type(e).__name__}); the run loads without its summary")
                flat.pop("run_id", None)
                row.update({k if k not in row else f"summary.{k}": v for k, v in flat.items()})
            runs.append(row)
            for name, frames in (("steps.csv", steps), ("probes.csv", probes), ("eval.csv", evals)):
                frame = _csv(d / name, d.name, problems)
                # a file with its header only would turn every column into text in the concatenation
                if frame is not None and len(frame):
                    frames.append(frame)
    runs = pd.DataFrame(runs)
    if len(runs):
        runs.insert(1, "study", runs["run_id"].map(studies))
    cat = lambda frames: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Results(runs=runs, steps=cat(steps), probes=cat(probes), eval=cat(evals), problems=problems)


def _check(r, folders):
    """The frames hold every complete row of every file, and the numeric columns are numbers."""
    errors = []
    n_runs = sum(len(run_folders(f)) for f in folders)
    if len(r.runs) != n_runs:
        errors.append(f"runs: {len(r.runs)} rows for {n_runs} run folders")
    for name, frame in (("steps", r.steps), ("probes", r.probes), ("eval", r.eval)):
        lines = sum(
            max(0, (d / f"{name}.csv").read_text().count("\n") - 1)
            for f in folders
            for d in run_folders(f)
            if (d / f"{name}.csv").is_file()
        )
        if len(frame) != lines:
            errors.append(f"{name}: {len(frame)} rows for {lines} lines in the files")
        text = [c for c in frame.columns if c not in ("run_id", "layer", "name")]
        wrong = [c for c in text if not pd.api.types.is_numeric_dtype(frame[c])]
        if wrong:
            errors.append(f"{name}: columns not numeric: {wrong}")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="results folders (or run folders)")
    parser.add_argument("--check", action="store_true", help="verify the frames against the files")
    args = parser.parse_args()
    try:
        r = load_results(args.folders)
    except (OSError, ValueError) as e:
        print(f"load_results: {e}", file=sys.stderr)
        return 1
    for name in ("runs", "steps", "probes", "eval"):
        frame = getattr(r, name)
        print(f"{name}: {len(frame)} rows x {len(frame.columns)} columns")
    if len(r.runs) and "status" in r.runs:
        print("status: " + ", ".join(f"{k} {v}" for k, v in r.runs["status"].value_counts().items()))
    for p in r.problems:
        print(f"load_results: {p}", file=sys.stderr)
    if r.problems:
        # loaded, but not everything: a script relying on the frames must not take this for success
        print(f"load_results: {len(r.problems)} problem(s) above; the rest loaded", file=sys.stderr)
        return 1
    if args.check:
        errors = _check(r, [Path(f) for f in args.folders])
        for e in errors:
            print(f"check failed: {e}", file=sys.stderr)
        if errors:
            return 1
        print("check: every row of every file loaded, numeric columns are numbers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
