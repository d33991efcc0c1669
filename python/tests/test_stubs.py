"""The type stubs (python/rssm.pyi, shipped as rssm/__init__.pyi with py.typed) name everything
the module exports, with the Rust doc comments as their docstrings. `.ci/run` also runs
`mypy.stubtest` (signatures) and mypy over examples/python."""

import ast
import inspect
import sys
from pathlib import Path

import rssm

STUB = Path(__file__).resolve().parents[1] / "rssm.pyi"


def stub_tree():
    return ast.parse(STUB.read_text(), filename=str(STUB))


def defined(body):
    """Names a stub body defines: functions, classes, annotated and assigned names."""
    names = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names[t.id] = node
    return names


def test_the_stub_names_every_export_of_the_module():
    tree = stub_tree()
    top = defined(tree.body)
    stub_all = ast.literal_eval(top["__all__"].value)
    assert sorted(stub_all) == sorted(rssm.__all__)
    missing = [n for n in rssm.__all__ if n not in top]
    assert not missing, f"rssm.pyi lacks {missing}"
    public = {n for n in dir(rssm) if not n.startswith("__") and n != "rssm"}
    assert public <= set(top), f"rssm.pyi lacks {sorted(public - set(top))}"


def test_the_stub_names_every_method_and_property_of_each_class():
    top = defined(stub_tree().body)
    classes = [n for n in rssm.__all__ if inspect.isclass(getattr(rssm, n))]
    assert set(classes) == {"Device", "Config", "WorldModel", "Dreamer", "Policy", "EngineError"}
    for name in classes:
        cls = getattr(rssm, name)
        stub = defined(top[name].body)
        runtime = {n for n in vars(cls) if not n.startswith("_")}
        assert runtime == {n for n in stub if not n.startswith("_")}, name
        # A constructor in the stub exactly when the class has one (classes carry their
        # signature from Python 3.10).
        if name != "EngineError" and sys.version_info >= (3, 10):
            assert ("__new__" in stub) == (cls.__text_signature__ is not None), name


def test_the_stub_docstrings_are_the_doc_comments():
    tree = stub_tree()
    top = defined(tree.body)
    assert inspect.cleandoc(ast.get_docstring(tree)) == inspect.cleandoc(rssm.__doc__)
    checked = 0
    for name in rssm.__all__:
        obj = getattr(rssm, name)
        node = top[name]
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        if obj.__doc__:
            assert ast.get_docstring(node) == inspect.cleandoc(obj.__doc__), name
            checked += 1
        if not isinstance(node, ast.ClassDef):
            continue
        for member, sub in defined(node.body).items():
            if member.startswith("_") or not isinstance(sub, ast.FunctionDef):
                continue
            doc = getattr(obj, member).__doc__
            if doc:
                assert ast.get_docstring(sub) == inspect.cleandoc(doc), f"{name}.{member}"
                checked += 1
            else:
                assert ast.get_docstring(sub) is None, f"{name}.{member}: no doc comment in lib.rs"
    assert checked > 30


def test_the_installed_package_ships_the_stub_and_py_typed():
    pkg = Path(rssm.__file__).parent
    assert (pkg / "py.typed").is_file()
    assert (pkg / "__init__.pyi").read_text() == STUB.read_text(), "reinstall: maturin develop"
