"""The size rules of the source tree (issue 11): files a reader can hold in mind.

No file in fastnn/ or csrc/ over MAX_FILE_LINES (csrc/_kernels.c is generated) and no Python
function in fastnn/ over MAX_FUNCTION_LINES. Split along the code's own seams when one grows.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
GENERATED = {"csrc/_kernels.c"}


def _sources():
    for path in sorted((ROOT / "fastnn").rglob("*.py")):
        yield path
    for path in sorted((ROOT / "csrc").iterdir()):
        if path.suffix in (".h", ".c", ".pyx", ".pxi"):
            yield path


def _long_functions(text, limit):
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                yield node.name, node.lineno, n


def test_no_source_file_is_too_long():
    long_files = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        n = len(path.read_text().splitlines())
        if rel not in GENERATED and n > MAX_FILE_LINES:
            long_files.append(f"{rel}: {n} lines")
    assert long_files == []


def test_no_python_function_is_too_long():
    long_functions = []
    for path in (ROOT / "fastnn").rglob("*.py"):
        for name, line, n in _long_functions(path.read_text(), MAX_FUNCTION_LINES):
            long_functions.append(f"{path.relative_to(ROOT)}:{line} {name}: {n} lines")
    assert long_functions == []


def test_the_function_measure_counts_whole_bodies():
    text = "def f():\n" + "    x = 1\n" * 85 + "\n\nclass C:\n    def g(self):\n        pass\n"
    assert list(_long_functions(text, MAX_FUNCTION_LINES)) == [("f", 1, 86)]
