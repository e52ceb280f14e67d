# test_package.py: the package's public names, its modules, and the native module's stub
# (troupe/_troupe.pyi) kept in step with bindings/python/_troupe.cpp.
import ast
import inspect
import os

import troupe
from troupe import _troupe

STUB = os.path.join(os.path.dirname(troupe.__file__), "_troupe.pyi")


def test_the_public_names_come_from_the_package():
    assert set(troupe.__all__) == {
        "Host", "Run", "Event", "RunList", "RunDetails", "TroupeError", "ConfigError",
        "StoreError", "ResumeRefused", "WorkflowError", "RunCancelled", "RunNotFound", "tool_schema",
        "RunStatus", "EventType"}
    for name in troupe.__all__:
        assert getattr(troupe, name) is not None, name
    assert issubclass(troupe.WorkflowError, troupe.TroupeError)
    assert issubclass(troupe.RunNotFound, KeyError)
    assert inspect.ismethod(troupe.Run.done) or inspect.isfunction(troupe.Run.done)
    assert os.path.isfile(os.path.join(os.path.dirname(troupe.__file__), "py.typed"))


def stub_names():
    """{"": module-level names, class: its member names} of the stub."""
    tree = ast.parse(open(STUB, encoding="utf-8").read())
    names = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[""].add(node.name)
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[""].add(node.target.id)
    return names


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_the_stub_of_the_native_module_matches_it():
    names = stub_names()
    assert names[""] == public(_troupe)
    for cls in ("NativeHost", "NativeRun"):
        assert names[cls] - {"__init__"} == public(getattr(_troupe, cls)), cls
    assert "__init__" in names["NativeHost"]
