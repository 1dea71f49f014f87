"""The CSV: one row per submission, safe to open in a spreadsheet; similarity and duplicate-name flags."""

from __future__ import annotations

import ast
import csv
import difflib
import io
import tokenize
from pathlib import Path

SIMILAR = 0.95  # token-sequence similarity from which two definitions are flagged for review


def safe_cell(value):
    """A spreadsheet must not read a cell as a formula: prefix text starting with = + - @ (or a tab/CR) with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def normalized_tokens(source: str) -> list[str]:
    """The definitions' tokens without comments, docstrings or layout: what similarity compares."""
    try:
        tree = ast.parse(source)
        for node in ast.walk(tree):  # drop docstrings
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                    isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                body.pop(0)
                if not body:
                    body.append(ast.Pass())
        text = ast.unparse(tree)
        return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                  tokenize.ENDMARKER)]
    except (SyntaxError, ValueError, RecursionError, MemoryError, tokenize.TokenError):
        return []


def similarity(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def similarity_flags(results, solution: dict, stubs: dict) -> None:
    """Set each result's `similar`: exercises whose definitions are near-identical to the worked solution's or
    to another submission's (stubs and identical-to-the-chapter code are not compared)."""
    tokens = {}
    for r in results:
        for name, source in r.definitions.items():
            t = normalized_tokens(source) if source else []
            if t and t != stubs.get(name):
                tokens[(r.file, name)] = t
    for r in results:
        flags = []
        for exercise_id, name in r.exercise_names.items():
            mine = tokens.get((r.file, name))
            if not mine:
                continue
            if similarity(mine, solution.get(name, [])) >= SIMILAR:
                flags.append(f"{exercise_id}≈solution")
                continue
            others = [other.file for other in results if other is not r and
                      similarity(mine, tokens.get((other.file, name), [])) >= SIMILAR]
            if others:
                flags.append(f"{exercise_id}≈{Path(others[0]).name}" + (f" (+{len(others) - 1})" if len(others) > 1 else ""))
        r.similar = "; ".join(flags)


def duplicate_flags(results) -> None:
    by_name: dict[str, list] = {}
    for r in results:
        by_name.setdefault(Path(r.file).name, []).append(r)
    for name, same in by_name.items():
        if len(same) > 1:
            for r in same:
                r.flags.append(f"duplicate name: also {', '.join(o.file for o in same if o is not r)}")


def write_csv(results, exercises, path: Path, seed=None) -> None:
    rows = []
    for r in results:
        row = {"file": r.file, "student": Path(r.file).stem, "run": r.run}
        total = maximum = 0
        for e in exercises:
            row[e.id] = r.points.get(e.id, 0)
            total += row[e.id]
            maximum += r.points.get(e.id + " max", e.max_points)
        row.update({"total": total, "max": maximum, "predictions": r.predictions, "similarity": r.similar,
                    "flags": " | ".join(r.flags), "seed": r.seed if r.seed is not None else seed,
                    "reasons": " | ".join(r.reasons)})
        rows.append({k: safe_cell(v) for k, v in row.items()})
    fields = ["file", "student", "run", *[e.id for e in exercises], "total", "max", "predictions", "similarity", "flags",
              "seed", "reasons"]
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
