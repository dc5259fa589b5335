"""A small AST mutation tester: how many one-change mutants of a module do its fast tests kill?

    python tools/mutate.py run src/normalize.py tests/test_normalize.py tests/test_phone_fast_path.py
    python tools/mutate.py table            # the table of every module run so far

Each mutant is one change to the module: a flipped comparison (`<` -> `>=`, `==` -> `!=`, `in` -> `not in`,
`is` -> `is not`), `and` <-> `or`, a dropped `not`, `+` <-> `-`, `*` <-> `/`, `max` <-> `min`, a changed
constant (number n -> n + 1, `True` <-> `False`, `None` -> `0`) or a statement replaced by `pass`.
String constants, docstrings, type annotations, `__all__`, logging calls, imports, `if TYPE_CHECKING:`
blocks and function or class definitions as a whole are left alone. Mutants that unparse to the same
source as another mutant (or as the original) are dropped.

For each mutant the tool writes the mutated module into a private copy of the repository (one copy per
worker, in a temporary directory; the working tree is never touched) and runs
`python -m pytest -x -q -p no:cacheprovider TESTS` there with a timeout. Killed: the tests failed or
timed out. Survived: they passed. Results go to `mutation-results/<module>.json` and
`mutation-results/<module>.survivors.md` (line, original, mutation), for writing the missing test or
listing the mutant in an equivalents file (`--equivalent FILE`, lines `path:line:mutation  # reason`).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import copy
import dataclasses
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "mutation-results"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", "storage", "mutation-results", ".mypy_cache", ".ruff_cache"
)
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
LOGGER_NAMES = {"log", "_log", "logger", "_logger", "logging"}

COMPARE_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
}
CALL_SWAPS = {"max": "min", "min": "max"}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change: which node (by walk order), how, and how to show it."""

    index: int  # position of the node in `_walk` order
    kind: str  # compare:<i> | boolop | not | binop | augop | call | const | delete
    line: int
    original: str
    mutation: str
    source: str = dataclasses.field(repr=False, compare=False, default="")

    @property
    def key(self) -> str:
        return f"{self.line}:{self.mutation}"


@dataclasses.dataclass
class Result:
    mutant: Mutant
    status: str  # killed | timeout | survived
    seconds: float


# --- finding mutants ---------------------------------------------------------------------------------


def _walk(tree: ast.AST) -> Iterator[tuple[int, ast.AST, list[ast.stmt] | None, int]]:
    """Every node in a fixed order, with the statement list holding it (for deletion), skipping what is
    never mutated: docstrings, annotations, `__all__`, logging calls, imports, TYPE_CHECKING blocks."""
    counter = 0

    def visit(
        node: ast.AST, holder: list[ast.stmt] | None, position: int
    ) -> Iterator[tuple[int, ast.AST, list[ast.stmt] | None, int]]:
        nonlocal counter
        index = counter
        counter += 1
        if _skipped(node):
            return
        yield index, node, holder, position
        for name, value in ast.iter_fields(node):
            if name in {"annotation", "returns", "type_comment", "decorator_list"}:
                continue
            if isinstance(value, list):
                body = value if value and all(isinstance(v, ast.stmt) for v in value) else None
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        if body is not None and i == 0 and _is_docstring(item):
                            continue
                        yield from visit(item, body, i)
            elif isinstance(value, ast.AST):
                yield from visit(value, None, 0)

    yield from visit(tree, None, 0)


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_log_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    if node.func.attr not in LOG_METHODS:
        return False
    owner = node.func.value
    if isinstance(owner, ast.Name):
        return owner.id in LOGGER_NAMES
    return isinstance(owner, ast.Attribute) and owner.attr in LOGGER_NAMES  # Actor.log.warning


def _skipped(node: ast.AST) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.JoinedStr):
        return True
    if isinstance(node, ast.Expr) and _is_log_call(node.value):
        return True
    if _is_log_call(node):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # a bare string or `...`: nothing to mutate, deleting it changes nothing
    if isinstance(node, ast.Assign) and _is_type_alias(node):
        return True
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
        if isinstance(node, ast.AnnAssign) and node.value is None:
            return True
    if isinstance(node, ast.If):
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name == "TYPE_CHECKING":
            return True
    return False


def _is_type_alias(node: ast.Assign) -> bool:
    """`LimitFn = Callable[[], int | None]`: a module-level name in CamelCase bound to a type expression."""
    target = node.targets[0]
    if len(node.targets) != 1 or not isinstance(target, ast.Name) or not target.id[:1].isupper() or target.id.isupper():
        return False
    value = node.value
    return isinstance(value, ast.Subscript) or (isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr))


def _segment(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node) or ast.unparse(node)
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= 100 else first[:97] + "..."


def _candidates(source: str, tree: ast.Module) -> Iterator[tuple[int, str, str, str, int]]:
    """(node index, kind, original text, mutation text, line) for every possible mutant."""
    compare_operands: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            compare_operands.update(id(c) for c in [node.left, *node.comparators])
    for index, node, holder, _position in _walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                flipped = COMPARE_FLIPS.get(type(op))
                if flipped is not None:
                    before, after = _op_text(op), _op_text(flipped())
                    yield index, f"compare:{i}", _segment(source, node), f"{before} -> {after}", line
        elif isinstance(node, ast.BoolOp):
            before, after = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            yield index, "boolop", _segment(source, node), f"{before} -> {after}", line
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield index, "not", _segment(source, node), "not x -> x", line
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in BINOP_SWAPS:
            if isinstance(node, ast.BinOp) and (_is_text(node.left) or _is_text(node.right)):
                continue  # string concatenation: a string-constant mutant
            before, after = _op_text(node.op), _op_text(BINOP_SWAPS[type(node.op)]())
            kind = "binop" if isinstance(node, ast.BinOp) else "augop"
            yield index, kind, _segment(source, node), f"{before} -> {after}", line
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALL_SWAPS:
            yield index, "call", _segment(source, node), f"{node.func.id} -> {CALL_SWAPS[node.func.id]}", line
        elif isinstance(node, ast.Constant) and not (node.value is None and id(node) in compare_operands):
            new = _new_constant(node.value)
            if new is not _NO_CHANGE:
                yield index, "const", _segment(source, node), f"{node.value!r} -> {new!r}", line
        if holder is not None and isinstance(node, ast.stmt) and not _never_deleted(node):
            yield index, "delete", _segment(source, node), "statement -> pass", line


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str | bytes))


def _never_deleted(node: ast.stmt) -> bool:
    kept = ast.Pass | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Global | ast.Nonlocal
    return isinstance(node, kept)


class _NoChange:
    pass


_NO_CHANGE = _NoChange()


def _new_constant(value: object) -> bool | int | float | _NoChange:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 1.0
    if value is None:
        return 0
    return _NO_CHANGE  # str, bytes, Ellipsis, complex: left alone


def _op_text(op: ast.AST) -> str:
    return {
        ast.Lt: "<",
        ast.GtE: ">=",
        ast.Gt: ">",
        ast.LtE: "<=",
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.In: "in",
        ast.NotIn: "not in",
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.FloorDiv: "//",
    }[type(op)]


def _apply(tree: ast.Module, index: int, kind: str) -> str:
    """The module's source with mutant (index, kind) applied; `tree` is a fresh copy and is changed."""
    for i, node, holder, position in _walk(tree):
        if i != index:
            continue
        if kind.startswith("compare:"):
            assert isinstance(node, ast.Compare)
            k = int(kind.split(":")[1])
            node.ops[k] = COMPARE_FLIPS[type(node.ops[k])]()
        elif kind == "boolop":
            assert isinstance(node, ast.BoolOp)
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif kind == "not":
            assert isinstance(node, ast.UnaryOp)
            _replace(tree, node, node.operand)
        elif kind in {"binop", "augop"}:
            assert isinstance(node, ast.BinOp | ast.AugAssign)
            node.op = BINOP_SWAPS[type(node.op)]()
        elif kind == "call":
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            node.func.id = CALL_SWAPS[node.func.id]
        elif kind == "const":
            assert isinstance(node, ast.Constant)
            new = _new_constant(node.value)
            assert not isinstance(new, _NoChange)
            node.value = new
        elif kind == "delete":
            assert holder is not None
            holder[position] = ast.copy_location(ast.Pass(), node)
        return ast.unparse(ast.fix_missing_locations(tree))
    raise LookupError(f"no node {index}")


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return


def find_mutants(path: Path) -> tuple[str, list[Mutant]]:
    """The module's unparsed (unmutated) source and its mutants, deduplicated by resulting source."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    baseline = ast.unparse(tree)
    seen = {baseline}
    mutants: list[Mutant] = []
    for index, kind, original, mutation, line in list(_candidates(source, tree)):
        mutated = _apply(copy.deepcopy(tree), index, kind)
        if mutated in seen:
            continue
        seen.add(mutated)
        mutants.append(Mutant(index, kind, line, original, mutation, mutated))
    return baseline, mutants


# --- running -----------------------------------------------------------------------------------------


def _run_tests(workdir: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    started = time.monotonic()
    with subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    ) as process:
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the pytest process group this call started
            process.wait()
            return "timeout", time.monotonic() - started
    return ("survived" if code == 0 else "killed"), time.monotonic() - started


def _make_copy(parent: Path, n: int) -> Path:
    target = parent / f"worker{n}"
    shutil.copytree(ROOT, target, ignore=COPY_IGNORE, symlinks=True)
    return target


def run(
    module: Path,
    tests: list[str],
    *,
    timeout: float | None,
    jobs: int,
    max_mutants: int | None,
    seed: int,
    equivalent: dict[str, str],
    out: Path,
    lines: set[int] | None = None,
) -> dict[str, object]:
    relative = module.resolve().relative_to(ROOT)
    baseline, mutants = find_mutants(ROOT / relative)
    if lines:
        mutants = [m for m in mutants if m.line in lines]
    total_found = len(mutants)
    excluded = [m for m in mutants if f"{relative}:{m.key}" in equivalent]
    mutants = [m for m in mutants if f"{relative}:{m.key}" not in equivalent]
    sampled = max_mutants is not None and len(mutants) > max_mutants
    if sampled:
        assert max_mutants is not None
        mutants = sorted(random.Random(seed).sample(mutants, max_mutants), key=lambda m: (m.line, m.index, m.kind))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        workers: queue.Queue[Path] = queue.Queue()
        for n in range(jobs):
            workers.put(_make_copy(Path(tmp), n))
        first = workers.get()
        target = first / relative
        original_text = target.read_text(encoding="utf-8")
        status, base_seconds = _run_tests(first, tests, timeout=600)
        if status != "survived":
            raise SystemExit(f"the tests fail on the unmutated module: {' '.join(tests)}")
        target.write_text(baseline, encoding="utf-8")
        status, unparsed_seconds = _run_tests(first, tests, timeout=600)
        target.write_text(original_text, encoding="utf-8")
        if status != "survived":
            raise SystemExit("the tests fail on the module as ast.unparse writes it; this tool cannot mutate it")
        workers.put(first)
        limit = timeout if timeout is not None else max(10.0, 3 * max(base_seconds, unparsed_seconds) + 5)
        print(
            f"{relative}: {len(mutants)} mutants (of {total_found}), baseline {base_seconds:.1f} s, "
            f"timeout {limit:.0f} s, {jobs} job(s)",
            flush=True,
        )

        def one(mutant: Mutant) -> Result:
            workdir = workers.get()
            path = workdir / relative
            try:
                path.write_text(mutant.source, encoding="utf-8")
                status, seconds = _run_tests(workdir, tests, limit)
            finally:
                path.write_text(original_text, encoding="utf-8")
                workers.put(workdir)
            return Result(mutant, status, seconds)

        results: list[Result] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for done, result in enumerate(pool.map(one, mutants), 1):
                results.append(result)
                if result.status == "survived":
                    m = result.mutant
                    print(f"  [{done}/{len(mutants)}] survived line {m.line}: {m.original}  ({m.mutation})", flush=True)
    elapsed = time.monotonic() - started
    killed = sum(r.status != "survived" for r in results)
    survivors = [r.mutant for r in results if r.status == "survived"]
    summary: dict[str, object] = {
        "module": str(relative),
        "tests": tests,
        "found": total_found,
        "equivalent": len(excluded),
        "sampled": sampled,
        "seed": seed if sampled else None,
        "mutants": len(results),
        "killed": killed,
        "timeouts": sum(r.status == "timeout" for r in results),
        "survived": len(survivors),
        "kill_percent": round(100 * killed / len(results), 1) if results else 100.0,
        "seconds": round(elapsed, 1),
        "survivors": [{"line": m.line, "original": m.original, "mutation": m.mutation} for m in survivors],
    }
    out.mkdir(parents=True, exist_ok=True)
    slug = str(relative).removesuffix(".py").replace("/", ".")
    (out / f"{slug}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    report = [
        f"# Surviving mutants of {relative}",
        "",
        f"Tests: `{' '.join(tests)}`. {_row_text(summary)}",
        "",
        "Write a test that kills each, or list it in an equivalents file as `path:line:mutation  # reason`.",
        "",
        "| line | original | mutation |",
        "|---:|---|---|",
        *(f"| {m.line} | `{_cell(m.original)}` | {_cell(m.mutation)} |" for m in survivors),
    ]
    (out / f"{slug}.survivors.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print(_row_text(summary))
    return summary


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row_text(s: dict[str, object]) -> str:
    sample = f", sampled (seed {s['seed']}) from {s['found']}" if s["sampled"] else ""
    return (
        f"{s['mutants']} mutants{sample}, {s['killed']} killed ({s['timeouts']} by timeout), "
        f"{s['survived']} survived: {s['kill_percent']}% in {s['seconds']} s"
    )


def table(out: Path) -> str:
    rows = [
        "| module | mutants | killed | survived | kill % | equivalent | tests |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for path in sorted(out.glob("*.json")):
        s = json.loads(path.read_text(encoding="utf-8"))
        mutants = f"{s['mutants']} of {s['found']}" if s["sampled"] else str(s["mutants"])
        rows.append(
            f"| {s['module']} | {mutants} | {s['killed']} | {s['survived']} | {s['kill_percent']} | "
            f"{s['equivalent']} | {' '.join(s['tests'])} |"
        )
    return "\n".join(rows)


def read_equivalents(path: Path | None) -> dict[str, str]:
    """`path:line:mutation  # reason` per line; a reason is required."""
    if path is None:
        return {}
    found: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        key, sep, reason = raw.partition("  # ")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{number}: write `path:line:mutation  # reason` (two spaces, then # and why)")
        found[key.strip()] = reason.strip()
    return found


def _line_set(text: str | None) -> set[int] | None:
    if not text:
        return None
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="mutate one module and run the given tests against each mutant")
    r.add_argument("module", type=Path, help="the module to mutate, e.g. src/normalize.py")
    r.add_argument("tests", nargs="+", help="pytest selection: files or node ids of the fast tests for it")
    r.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the baseline run + 5, >= 10)")
    r.add_argument("--max-mutants", type=int, help="sample at most this many mutants")
    r.add_argument("--seed", type=int, default=11, help="sampling seed (default 11)")
    r.add_argument("--jobs", type=int, default=1, help="parallel workers, each with its own repo copy (default 1)")
    r.add_argument("--equivalent", type=Path, help="file of `path:line:mutation  # reason` mutants to leave out")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory (default mutation-results/)")
    r.add_argument("--lines", help="only mutants on these lines, e.g. 139-141,200 (to check given survivors)")
    r.add_argument("--list", action="store_true", help="only list the mutants, run nothing")
    t = sub.add_parser("table", help="the table of every module in the results directory")
    t.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.command == "table":
        print(table(args.out))
        return 0
    if args.list:
        _, mutants = find_mutants(args.module)
        for m in mutants:
            print(f"{args.module}:{m.key}\t{m.original}")
        print(f"{len(mutants)} mutants")
        return 0
    summary = run(
        args.module,
        args.tests,
        timeout=args.timeout,
        jobs=max(1, args.jobs),
        max_mutants=args.max_mutants,
        seed=args.seed,
        equivalent=read_equivalents(args.equivalent),
        out=args.out,
        lines=_line_set(args.lines),
    )
    return 0 if summary["survived"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
