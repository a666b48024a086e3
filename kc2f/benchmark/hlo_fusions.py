"""The widest fusions of XLA's optimised programs: where a compiled step recomputes instead of storing.

A lead of issue 35 (docs/method.md, "Performance anchors"): on JAX's XLA:CPU the
training step of a 4-deep AST spends 37% of its op time in loop fusions that
write the transposed residual-stream gradient for the weight-gradient dots,
each recomputing every later block's LayerNorm-backward terms instead of
reading them once: their operand lists grow towards the input (14 operands in
the last block's, 65 in the patch embedding's). Those programs ran in float32;
in bfloat16 the widest fusion had 9 operands at C = 1, 2 and 4, and the GPU's
slow C = 2 step came from the benchmark running it in float32 (8816de2). Whether
XLA:GPU builds such fusions at some shapes is what this module checks on a
device's dump: it reads the optimised HLO that XLA writes with

    XLA_FLAGS="--xla_dump_to=DIR --xla_dump_hlo_as_text"

and lists, per program, its fusions with the most operands. `tools/gpu_bench.sh`
with `PROFILE=1` runs it on the dump of the profiled steps:

    python -m kc2f.benchmark.hlo_fusions DIR [--top 5] [--match train_step]
"""

import argparse
import pathlib
import re
import sys

# `%name = TYPE fusion(OPERANDS), kind=KIND, ...`; TYPE may be a tuple (multi-output fusions).
_FUSION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.+?) fusion\((.*)\), kind=(\w+)")
_COMMENT = re.compile(r"/\*.*?\*/")
SUFFIX = "after_optimizations.txt"


def fusions(hlo_text):
    """Every fusion instruction of an HLO module's text, in order.

    Args:
        hlo_text: an HLO module as XLA prints it (`--xla_dump_hlo_as_text`).

    Returns:
        list of dicts: `name`, `shape` (the result type as printed), `kind`
        (`kLoop`, `kInput`, `kOutput`, `kCustom`) and `operands` (their count).
    """
    found = []
    for line in hlo_text.splitlines():
        match = _FUSION.match(line)
        if match is None:
            continue
        name, shape, operands, kind = match.groups()
        operands = [item for item in _COMMENT.sub("", operands).split(",") if item.strip()]
        found.append({"name": name, "shape": shape, "kind": kind, "operands": len(operands)})
    return found


def summarize_dump(dump_dir, top=5, match=""):
    """The widest fusions of each optimised program under `dump_dir`.

    Args:
        dump_dir: the directory given to `--xla_dump_to`.
        top: fusions listed per program.
        match: only programs whose file name contains this text (e.g. `train_step`).

    Returns:
        list of dicts, one per `*after_optimizations.txt` file (oldest first):
        `module` (the file name less the suffix), `fusions` (their count),
        `operands` (summed over them), `widest` (the `top` fusions with the
        most operands, as `fusions` gives them).
    """
    files = sorted(pathlib.Path(dump_dir).rglob(f"*{SUFFIX}"), key=lambda path: path.stat().st_mtime)
    rows = []
    for path in files:
        if match not in path.name:
            continue
        found = fusions(path.read_text(errors="replace"))
        widest = sorted(found, key=lambda fusion: -fusion["operands"])[:top]
        rows.append({"module": path.name[: -len(SUFFIX)].rstrip("._"), "fusions": len(found),
                     "operands": sum(fusion["operands"] for fusion in found), "widest": widest})
    return rows


def format_summary(rows):
    """The summary as text: a line per program, then its widest fusions."""
    if not rows:
        return "no optimised HLO found (run with XLA_FLAGS=\"--xla_dump_to=DIR --xla_dump_hlo_as_text\")"
    lines = []
    for row in rows:
        lines.append(f"{row['module']}: {row['fusions']} fusions, {row['operands']} operands in all; widest:")
        for fusion in row["widest"]:
            lines.append(f"  {fusion['operands']:4d} operands  {fusion['kind']:8s} {fusion['name']}  -> "
                         f"{fusion['shape'][:60]}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump_dir", help="the directory given to --xla_dump_to")
    parser.add_argument("--top", type=int, default=5, help="fusions listed per program (default 5)")
    parser.add_argument("--match", default="", help="only programs whose file name contains this text")
    args = parser.parse_args(argv)
    if not pathlib.Path(args.dump_dir).is_dir():
        parser.error(f"{args.dump_dir} is not a directory")
    print(format_summary(summarize_dump(args.dump_dir, top=args.top, match=args.match)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
