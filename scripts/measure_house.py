"""Measures of the code's layout (issue 8): module sizes, public names, annotations.

    python scripts/measure_house.py [ROOT]

Prints the three largest Python and TypeScript modules (lines), the public names each package
exports (``__all__`` of its ``__init__``), and the public functions and methods whose parameters
or return are not annotated. Reads the files only (no import).
"""

from __future__ import annotations

import ast
import pathlib
import sys


def lines(path: pathlib.Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def exported(init: pathlib.Path) -> list[str]:
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    return []


def public_functions(path: pathlib.Path) -> tuple[int, list[str]]:
    """(number of public functions, the unannotated ones as ``module:qualname``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    total, bad = 0, []

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        nonlocal total
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_") and node.name != "__init__":
                    continue
                total += 1
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                if in_class and args and args[0].arg in ("self", "cls"):
                    args = args[1:]
                for extra in (node.args.vararg, node.args.kwarg):
                    if extra is not None:
                        args.append(extra)
                missing = [a.arg for a in args if a.annotation is None]
                if node.returns is None or missing:
                    bad.append(f"{path.stem}:{prefix}{node.name}")

    visit(tree.body, "", False)
    return total, bad


def main(root: pathlib.Path) -> None:
    pkg = root / "samplelens_widget"
    py = sorted(pkg.rglob("*.py"))
    ts = sorted(p for p in (root / "js").rglob("*.ts") if "__tests__" not in p.parts)
    print("| largest modules | lines |\n|---|---:|")
    for group in (py, ts):
        for p in sorted(group, key=lines, reverse=True)[:3]:
            print(f"| {p.relative_to(root)} | {lines(p)} |")
    print("\n| package | public names |\n|---|---:|")
    for init in [pkg / "__init__.py", *sorted(pkg.glob("*/__init__.py"))]:
        print(f"| {init.parent.relative_to(root)} | {len(exported(init))} |")
    total, bad = 0, []
    for p in py:
        n, b = public_functions(p)
        total += n
        bad += b
    print(f"\nunannotated public functions: {len(bad)} of {total}")
    for name in bad:
        print(f"  {name}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
