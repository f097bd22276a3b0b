"""fastnn/codes.py is the one home of the kernel codes: the C header and extension must agree.

Also checks the architecture rule that only the backend registry imports backend modules.
"""

import ast
import pathlib
import re

import pytest

from fastnn import codes

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEADER = ROOT / "csrc" / "fnn.h"
PYX = ROOT / "csrc" / "_kernels.pyx"

# enum in fnn.h (in order) -> the names of fastnn.codes its members must equal
C_ENUMS = [
    ("FNN_IDENTITY", ["IDENTITY", "SIGMOID", "RELU", "TANH", "LEAKY_RELU", "SOFTMAX"]),
    ("FNN_MSE", ["MSE", "CROSS_ENTROPY", "BINARY_CROSS_ENTROPY"]),
    ("FNN_SGD", ["SGD", "MOMENTUM", "NESTEROV", "ADAM"]),
    ("FNN_ACC_NONE", ["ACC_NONE", "ACC_ARGMAX", "ACC_BINARY"]),
]


def _header_enums(text):
    """Every anonymous enum of the header as {first member: [(member, value), ...]}."""
    enums = {}
    for body in re.findall(r"enum\s*\{([^}]*)\}", text):
        members, value = [], -1
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, explicit = item.partition("=")
            value = int(explicit, 0) if explicit.strip() else value + 1
            members.append((name.strip(), value))
        enums[members[0][0]] = members
    return enums


@pytest.mark.parametrize("first, names", C_ENUMS)
def test_header_enums_equal_codes(first, names):
    enums = _header_enums(HEADER.read_text())
    assert first in enums, f"fnn.h has no enum starting with {first}"
    values = [v for _, v in enums[first]]
    assert values == [getattr(codes, n) for n in names], (first, enums[first])


def test_header_leaky_slope_equals_codes():
    m = re.search(r"#define\s+FNN_LEAKY_SLOPE\s+([0-9.eE+-]+)", HEADER.read_text())
    assert m is not None, "fnn.h must define FNN_LEAKY_SLOPE"
    assert float(m.group(1)) == codes.LEAKY_SLOPE


def test_header_parser_sees_a_changed_code():
    """The parser above reads values, not just names: a renumbered enum is caught."""
    text = "enum { FNN_SGD, FNN_MOMENTUM = 5, FNN_NESTEROV };"
    assert _header_enums(text)["FNN_SGD"] == [("FNN_SGD", 0), ("FNN_MOMENTUM", 5),
                                                 ("FNN_NESTEROV", 6)]


def _extension_source():
    """_kernels.pyx with the text of every file it includes."""
    text = PYX.read_text()
    included = re.findall(r'^include\s+"([^"]+)"', text, flags=re.M)
    assert included, "_kernels.pyx includes its .pxi files"
    return "\n".join([text] + [(PYX.parent / name).read_text() for name in included])


def test_pyx_uses_header_names_not_literal_codes():
    """Range checks in the extension's source name the fnn.h enums, not bare 0..5 literals."""
    src = _extension_source()
    for named in ("d.loss < FNN_MSE", "d.act[l] < FNN_IDENTITY", "o.kind < FNN_SGD",
                  "acc_mode < FNN_ACC_NONE"):
        assert named in src, f"range check {named!r} not found: is the whole source read?"
    for pattern in (r"d\.loss\s*[<>]\s*\d", r"d\.act\[l\]\s*[<>=]+\s*\d", r"o\.kind\s*[<>=]+\s*\d",
                    r"acc_mode\s*[<>]\s*\d", r"\(REAL\)0\.01"):
        assert re.search(pattern, src) is None, pattern


def test_compiled_extension_codes_equal_codes():
    kernels = pytest.importorskip("fastnn._kernels", reason="Cython extension not built")
    for name, value in kernels.C_CODES.items():
        assert value == getattr(codes, name), name
    assert len(kernels.C_CODES) == sum(len(n) for _, n in C_ENUMS) + 1


def test_python_tables_use_codes():
    from fastnn import activations, losses

    assert activations.CODES is codes.ACTIVATIONS and losses.CODES is codes.LOSSES
    assert activations.LEAKY_SLOPE is codes.LEAKY_SLOPE
    assert sorted(codes.OPTIMIZER_KINDS.values()) == [0, 1, 2, 3]


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            yield base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


BACKEND_MODULES = {"numpy_backend", "cython_backend", "numba_backend", "_kernels", "_nb"}


def test_only_the_registry_imports_backend_modules():
    pkg = ROOT / "fastnn"
    offenders = []
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg)
        if rel.parts[0] in ("backends", "_nb"):
            continue  # the registry and the backends themselves
        for mod, names in _imports(path):
            if not mod.startswith((".", "fastnn")):
                continue  # third-party (e.g. matplotlib.backends)
            parts = re.split(r"\.+", mod) + names
            if any(p in BACKEND_MODULES for p in parts):
                offenders.append(f"{rel}: {mod} {names}")
    assert offenders == []
