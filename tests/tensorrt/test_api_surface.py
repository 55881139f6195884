"""Every TensorRT attribute the package uses exists in TensorRT 10.3, 10.16 and 11.4.

TensorRT cannot be installed here, so the check is static:

1. an ``ast`` scan of ``pointpillars_trt/tensorrt/*.py`` and ``network/tensorrt.py`` collects every
   attribute taken on the ``trt`` module or on a TensorRT object (see :class:`TrtUseScanner`);
2. that set must equal :data:`pointpillars_trt.tensorrt.api.TRT_API_USED` (the declared list);
3. each name must be in the identifier lists read out of the real bindings
   (``../shared/tensorrt-api/identifiers-<version>.txt``), or, for the few names the binaries
   store otherwise, be referenced in the bindings' docstrings (a Sphinx role such as
   ``:class:`Runtime``` or ``:ivar num_errors:``), or be the merged tail of an identifier
   (``CONDITIONAL_INPUT`` holds ``INPUT``: the linker stores one string for both).
"""

from __future__ import annotations

import ast
import functools
import re
import tokenize
from pathlib import Path

import pytest

from pointpillars_trt.tensorrt.api import TRT_API_USED

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "pointpillars_trt"
API_DIR = REPO.parent / "shared" / "tensorrt-api"
VERSIONS = ("10.3.0", "10.16.1.11", "11.4.0.106")
SCANNED = sorted((PKG / "tensorrt").glob("*.py")) + [PKG / "network" / "tensorrt.py"]

#: module attributes set by tensorrt/__init__.py or by the import system, not by the compiled bindings
PYTHON_LEVEL = {"__version__", "__file__", "__path__"}
#: removed in TensorRT 11 (or 10): using any of them must fail this test
#: (``set_flag`` is allowed, for VERSION_COMPATIBLE only: the source scan below forbids BuilderFlag.FP16 / INT8)
FORBIDDEN = {
    "FP16", "INT8", "EXPLICIT_BATCH", "int8_calibrator", "platform_has_fast_fp16", "build_engine",
    "execute_async_v2", "execute_v2", "get_binding_index", "num_bindings", "set_binding_shape", "max_workspace_size",
    "get_binding_shape", "binding_is_input",
}
#: calls that leave TensorRT land (their result is a plain Python value)
CONVERTERS = {"str", "int", "float", "bool", "bytes", "tuple", "list", "len", "range", "isinstance", "memoryview", "dict", "set", "sorted", "repr"}


# ---- the scanner ---------------------------------------------------------------------------------
def _mentions_trt(node: ast.AST | None) -> bool:
    if node is None:
        return False
    text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ast.unparse(node)
    return re.search(r"\btrt\.", text) is not None


def _call_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _returns_module(fn: ast.AST) -> bool:
    """``return trt``: a loader of the module itself (e.g. ``load_tensorrt``)."""
    return any(isinstance(n, ast.Return) and isinstance(n.value, ast.Name) and n.value.id == "trt" for n in ast.walk(fn))


def _code_without_strings(path: Path) -> str:
    """The source with string literals and comments removed (docstrings may name removed APIs)."""
    with open(path, "rb") as f:
        toks = [t.string for t in tokenize.tokenize(f.readline) if t.type not in (tokenize.STRING, tokenize.COMMENT, tokenize.ENCODING)]
    return " ".join(toks)


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, (ast.Tuple, ast.List)):
        return [t for e in node.elts for t in _targets(e)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return [node]


class TrtUseScanner:
    """Collects ``{attribute name: [file:line, ...]}`` of attributes taken on TensorRT objects.

    TensorRT objects are: the name ``trt``; results of functions whose return annotation names
    ``trt.`` (e.g. ``-> "trt.ICudaEngine"``); parameters and class fields annotated with ``trt.``;
    and, by propagation, anything assigned from (or iterated out of) a TensorRT object or a method
    call on one — except through a converter such as ``str()`` or ``int()``. ``self.x`` assigned a
    TensorRT object makes ``x`` a TensorRT field everywhere. The analysis over-approximates: a false
    hit shows up as an unknown name, never as a missed one.
    """

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.trees = trees
        self.trt_functions: set[str] = set()
        self.trt_fields: set[str] = set()
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (_mentions_trt(node.returns) or _returns_module(node)):
                    self.trt_functions.add(node.name)
                if isinstance(node, ast.ClassDef):
                    for stmt in node.body:
                        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and _mentions_trt(stmt.annotation):
                            self.trt_fields.add(stmt.target.id)
        self.uses: dict[str, list[str]] = {}
        self.unannotated_returns: list[str] = []

    # expression taint
    def tainted(self, expr: ast.AST, names: set[str]) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id == "trt" or expr.id in names
        if isinstance(expr, ast.Attribute):
            return expr.attr in self.trt_fields or ast.unparse(expr) in names or self.tainted(expr.value, names)
        if isinstance(expr, ast.Call):
            name = _call_name(expr.func)
            if isinstance(expr.func, ast.Name) and name in CONVERTERS:
                return False
            if name in self.trt_functions:
                return True
            return isinstance(expr.func, ast.Attribute) and self.tainted(expr.func.value, names)
        if isinstance(expr, ast.Subscript):
            return self.tainted(expr.value, names)
        if isinstance(expr, ast.IfExp):
            return self.tainted(expr.body, names) or self.tainted(expr.orelse, names)
        if isinstance(expr, ast.BoolOp):
            return any(self.tainted(v, names) for v in expr.values)
        if isinstance(expr, ast.NamedExpr):
            return self.tainted(expr.value, names)
        if isinstance(expr, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
            return self.tainted(expr.elt, names)
        return False

    def _taint_set(self, scope: ast.AST) -> set[str]:
        names: set[str] = set()
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in scope.args.posonlyargs + scope.args.args + scope.args.kwonlyargs:
                if _mentions_trt(a.annotation):
                    names.add(a.arg)
        changed = True
        while changed:  # fixpoint over the scope's assignments (order-insensitive)
            changed = False
            for node in ast.walk(scope):
                pairs: list[tuple[ast.AST, ast.AST]] = []
                if isinstance(node, ast.Assign):
                    pairs = [(t, node.value) for tgt in node.targets for t in _targets(tgt)]
                elif isinstance(node, ast.AnnAssign):
                    if _mentions_trt(node.annotation) or (node.value is not None and self.tainted(node.value, names)):
                        names_before = len(names)
                        names.add(ast.unparse(node.target))
                        changed |= len(names) != names_before
                elif isinstance(node, (ast.For, ast.comprehension)):
                    pairs = [(t, node.iter) for t in _targets(node.target)]
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    pairs = [(t, node.context_expr) for t in _targets(node.optional_vars)]
                elif isinstance(node, ast.NamedExpr):
                    pairs = [(node.target, node.value)]
                for target, value in pairs:
                    key = ast.unparse(target)
                    if key not in names and self.tainted(value, names):
                        names.add(key)
                        changed = True
                        if key.startswith("self."):
                            self.trt_fields.add(key[5:])
        return names

    def _record(self, scope: ast.AST, names: set[str], where: str) -> None:
        for node in ast.walk(scope):
            if isinstance(node, ast.Attribute) and self.tainted(node.value, names):
                self.uses.setdefault(node.attr, []).append(f"{where}:{node.lineno}")
            if (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr")
                and len(node.args) >= 2 and self.tainted(node.args[0], names)
            ):
                arg = node.args[1]
                name = arg.value if isinstance(arg, ast.Constant) else f"<dynamic {ast.unparse(arg)}>"
                self.uses.setdefault(str(name), []).append(f"{where}:{node.lineno}")

    def scan(self) -> dict[str, list[str]]:
        # two rounds so that TensorRT fields found through ``self.x = ...`` reach every method
        for _ in range(2):
            self.uses = {}
            self.unannotated_returns = []
            for where, tree in self.trees.items():
                functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                self._record_module_level(tree, where)
                for fn in functions:
                    names = self._taint_set(fn)
                    self._record(fn, names, where)
                    if not _mentions_trt(fn.returns) and not _returns_module(fn):
                        for node in ast.walk(fn):
                            if isinstance(node, ast.Return) and node.value is not None and self.tainted(node.value, names):
                                self.unannotated_returns.append(f"{where}:{node.lineno} ({fn.name})")
        return self.uses

    def _record_module_level(self, tree: ast.Module, where: str) -> None:
        body = ast.Module(body=[s for s in tree.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))], type_ignores=[])
        self._record(body, self._taint_set(body), where)


def scan_sources(sources: dict[str, str]) -> TrtUseScanner:
    scanner = TrtUseScanner({name: ast.parse(text) for name, text in sources.items()})
    scanner.scan()
    return scanner


@functools.lru_cache(maxsize=None)
def package_scan() -> TrtUseScanner:
    return scan_sources({str(p.relative_to(REPO)): p.read_text() for p in SCANNED})


# ---- the identifier lists ------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def identifiers(version: str) -> frozenset[str]:
    path = API_DIR / f"identifiers-{version}.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared/tensorrt-api is needed for the API check)")
    return frozenset(line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip())


@functools.lru_cache(maxsize=None)
def docstrings(version: str) -> str:
    path = API_DIR / f"docstrings-{version}.txt"
    return path.read_text(errors="replace") if path.is_file() else ""


def where_found(name: str, version: str) -> str | None:
    """How ``name`` is evidenced in TensorRT ``version``: "identifier", "docstring", "merged-tail", or None."""
    if name in PYTHON_LEVEL:
        return "python-level"
    ids = identifiers(version)
    if name in ids:
        return "identifier"
    n = re.escape(name)
    role = rf":(?:class|attr|func|meth|py:\w+):`[~!]?(?:[\w.]*\.)?{n}(?:\.[\w.]*)?(?:\(\))?`|:(?:ivar|arg|param) {n}:"
    if re.search(role, docstrings(version)):
        return "docstring"
    if any(i.endswith("_" + name) for i in ids):
        return "merged-tail"
    return None


# ---- tests ---------------------------------------------------------------------------------------
def test_scanned_files_exist():
    assert (PKG / "tensorrt" / "api.py") in SCANNED
    assert all(p.is_file() for p in SCANNED)


def test_declared_list_matches_the_code():
    used = package_scan().uses
    undeclared = {n: used[n][:3] for n in sorted(set(used) - TRT_API_USED)}
    stale = sorted(TRT_API_USED - set(used))
    assert not undeclared, f"TensorRT attributes used but missing from TRT_API_USED: {undeclared}"
    assert not stale, f"TRT_API_USED lists names the code no longer uses: {stale}"


def test_trt_returning_functions_are_annotated():
    """The scan follows TensorRT objects through functions by their return annotations."""
    assert not package_scan().unannotated_returns, f"annotate these returns with -> 'trt.X': {package_scan().unannotated_returns}"


def test_only_the_api_module_imports_tensorrt():
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        type_checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tensorrt" for a in node.names) and id(node) not in type_checking:
                assert path.name == "api.py" and path.parent.name == "tensorrt", f"{path}:{node.lineno} imports tensorrt; go through pointpillars_trt.tensorrt.api"
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tensorrt" and node.level == 0:
                assert False, f"{path}:{node.lineno}: from tensorrt import ...; use pointpillars_trt.tensorrt.api"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_used_name_exists(version):
    missing = sorted(n for n in TRT_API_USED if where_found(n, version) is None)
    assert not missing, f"not in TensorRT {version}: {missing}"


def test_no_removed_api_is_used():
    used = set(package_scan().uses) | TRT_API_USED
    assert not used & FORBIDDEN, f"removed or weak-typing TensorRT API used: {sorted(used & FORBIDDEN)}"
    for path in SCANNED:
        text = _code_without_strings(path).replace(" . ", ".")
        for pattern in ("BuilderFlag.FP16", "BuilderFlag.INT8", "EXPLICIT_BATCH", "execute_async_v2", "get_binding_index"):
            assert pattern not in text, f"{path} mentions {pattern}"


def test_strongly_typed_networks():
    used = package_scan().uses
    assert "STRONGLY_TYPED" in used and "create_network" in used


# ---- the check itself is not vacuous -------------------------------------------------------------
def test_removed_names_are_detected_as_missing_in_11():
    assert where_found("FP16", "11.4.0.106") is None
    assert where_found("EXPLICIT_BATCH", "11.4.0.106") is None
    assert where_found("platform_has_fast_fp16", "11.4.0.106") is None
    assert where_found("execute_async_v4", "10.3.0") is None
    assert where_found("EXPLICIT_BATCH", "10.3.0") == "identifier"
    assert where_found("STRONGLY_TYPED", "11.4.0.106") == "identifier"
    assert where_found("Runtime", "11.4.0.106") == "docstring"
    assert where_found("INPUT", "11.4.0.106") == "merged-tail"


def test_scanner_follows_tensorrt_objects():
    src = '''
import tensorrt as trt
from dataclasses import dataclass

def make(logger) -> "trt.ICudaEngine":
    runtime = trt.Runtime(logger)
    return runtime.deserialize_cuda_engine(b"")

@dataclass
class Holder:
    context: "trt.IExecutionContext" = None

class User:
    def start(self, logger):
        self.engine = make(logger)
        self.n = int(self.engine.num_io_tensors)

    def run(self, holder):
        ctx = holder.context
        ctx.execute_async_v2(0)
        name = str(self.engine.get_tensor_name(0))
        name.upper()
        for t in (self.engine.get_binding_shape(i) for i in range(3)):
            t.misspeled
        return getattr(self.engine, "num_bindings")

def leak(engine: "trt.ICudaEngine"):
    return engine.create_execution_context()
'''
    s = scan_sources({"x.py": src})
    assert {"Runtime", "deserialize_cuda_engine", "num_io_tensors", "execute_async_v2", "get_tensor_name",
            "get_binding_shape", "misspeled", "num_bindings", "create_execution_context"} <= set(s.uses)
    assert "upper" not in s.uses  # str() leaves TensorRT land
    assert any("leak" in r for r in s.unannotated_returns)


# ---- argument kinds of every call, against the docstrings (with a FAKE tensorrt module) -------------
# TensorRT cannot be installed here. The fake module in fake_tensorrt.py records each call the
# package makes; the table below gives, per method, the argument names in TensorRT's docstrings
# (checked: the run of ``:arg`` lines exists in every version's docstrings) and the Python kind we
# must pass for each (from the docstring's words and the bound C++ signature). This checks the
# SHAPE of our calls only, not TensorRT's behaviour.
OBJ = "a TensorRT object"
ENUM = "a TensorRT enum member"
INT_TUPLE = "a tuple of ints"
DOCUMENTED: dict[str, tuple[tuple[str, object], ...]] = {
    "Logger": (("min_severity", ENUM),),
    "Logger.min_severity=": (("min_severity", ENUM),),
    "Builder.create_network": (("flags", int),),
    "Builder.build_serialized_network": (("network", OBJ), ("config", OBJ)),
    "BuilderConfig.set_memory_pool_limit": (("pool", ENUM), ("pool_size", int)),
    "BuilderConfig.clear_flag": (("flag", ENUM),),
    "BuilderConfig.set_flag": (("flag", ENUM),),
    "BuilderConfig.hardware_compatibility_level=": (("hardware_compatibility_level", ENUM),),
    "BuilderConfig.create_timing_cache": (("serialized_timing_cache", bytes),),
    "BuilderConfig.set_timing_cache": (("cache", OBJ), ("ignore_mismatch", bool)),
    "BuilderConfig.add_optimization_profile": (("profile", OBJ),),
    "Profile.set_shape": (("input", str), ("min", INT_TUPLE), ("opt", INT_TUPLE), ("max", INT_TUPLE)),
    "Network.get_input": (("index", int),),
    "Network.get_output": (("index", int),),
    "Runtime.deserialize_cuda_engine": (("serialized_engine", bytes),),
    "Runtime.engine_host_code_allowed=": (("engine_host_code_allowed", bool),),
    "Engine.get_tensor_name": (("index", int),),
    "Engine.get_tensor_mode": (("name", str),),
    "Engine.get_tensor_dtype": (("name", str),),
    "Engine.get_tensor_shape": (("name", str),),
    "Engine.get_tensor_format": (("name", str),),
    "Engine.get_tensor_profile_shape": (("name", str), ("profile_index", int)),
    "Context.set_input_shape": (("name", str), ("shape", INT_TUPLE)),
    "Context.set_tensor_address": (("name", str), ("memory", int)),
    "Context.get_tensor_shape": (("name", str),),
    "Context.execute_async_v3": (("stream_handle", int),),
}
#: calls whose docstrings are not in ../shared/tensorrt-api (the constructors' and the ONNX parser's
#: live in other binaries); their kinds follow TensorRT's Python API reference
UNDOCUMENTED: dict[str, tuple[tuple[str, object], ...]] = {
    "Builder": (("logger", OBJ),), "Runtime": (("logger", OBJ),), "OnnxParser": (("network", OBJ), ("logger", OBJ)),
    "OnnxParser.parse_from_file": (("model", str),), "OnnxParser.get_error": (("index", int),),
}
NO_ARGS = {"Builder.create_builder_config", "Builder.create_optimization_profile", "BuilderConfig.get_timing_cache",
           "TimingCache.serialize", "Engine.create_execution_context"}


def _ivar_or_arg_run(names: list[str], text: str) -> bool:
    """The docstrings document these arguments, in this order (a run of ``:arg`` lines), or the
    attribute (``:ivar name:`` / ``:arg name:``, for a property set)."""
    if len(names) == 1:
        return re.search(rf":(?:arg|ivar) {re.escape(names[0])}:", text) is not None
    run = r"[^\n]*\n\s*".join(rf":arg {re.escape(n)}:" for n in names)
    return re.search(run, text) is not None


@pytest.mark.parametrize("version", VERSIONS)
def test_the_argument_table_is_what_the_docstrings_document(version):
    text = docstrings(version)
    if not text:
        pytest.skip("docstrings not found")
    missing = {m: [a for a, _ in args] for m, args in DOCUMENTED.items() if not _ivar_or_arg_run([a for a, _ in args], text)}
    assert not missing, f"TensorRT {version} does not document these arguments: {missing}"


def _kind_ok(value, kind) -> bool:
    from tests.tensorrt import fake_tensorrt as fake

    if kind == OBJ:
        return isinstance(value, fake.Recorder)
    if kind == ENUM:
        return isinstance(value, fake.EnumValue)
    if kind == INT_TUPLE:
        return isinstance(value, tuple) and all(type(v) is int for v in value)
    return type(value) is kind


@pytest.fixture()
def fake_trt(monkeypatch):
    """The FAKE tensorrt module in place of the real one (see fake_tensorrt.py)."""
    from pointpillars_trt.tensorrt import api
    from tests.tensorrt import fake_tensorrt as fake

    fake.CALLS.clear()
    fake.LOGGERS.clear()
    api._the_logger.cache_clear()
    monkeypatch.setattr(api, "load_tensorrt", lambda: fake)
    yield fake
    api._the_logger.cache_clear()


def _run_everything(tmp_path, cfg, fake):
    """A build (build_engine) and a run (EngineRunner) through every TensorRT call of the package."""
    from types import SimpleNamespace

    from pointpillars_trt.tensorrt import api
    from pointpillars_trt.tensorrt.build import BuildOptions, build_engine
    from pointpillars_trt.tensorrt.contract import read_onnx_info
    from pointpillars_trt.tensorrt.runner import EngineRunner
    from tests.tensorrt.test_build_engines import tiny_graph

    info = read_onnx_info(tiny_graph(tmp_path / "pfn.onnx", cfg, "pfn", "fp16"))
    (tmp_path / "old.cache").write_bytes(b"cache")
    options = BuildOptions(timing_cache=tmp_path / "old.cache", tf32=False, hardware_compat=True, version_compatible=True,
                           max_pillars=100, log_severity="info")
    header = build_engine(info, tmp_path / "pfn.plan", options, "NVIDIA H100", (9, 0))
    assert (tmp_path / "pfn.plan").read_bytes() == b"serialized plan" and header.version_compatible
    device = SimpleNamespace(info=SimpleNamespace(name="NVIDIA H100", compute_capability=(9, 0)), make_current=lambda: None)
    runner = EngineRunner("pfn", tmp_path / "pfn.plan", cfg, device, "10.3.0")
    runner.activate(api.create_runtime(api.process_logger()))
    runner.set_shape("features", (100, 32, 10))
    runner.bind("features", 0x7F0000000000)
    api.context_tensor_shape(runner.execution.context, "features")
    runner.execute(0x5555)
    return runner


def test_every_call_passes_the_documented_argument_kinds(tmp_path, kitti_config, fake_trt):
    _run_everything(tmp_path, kitti_config, fake_trt)
    table = {**DOCUMENTED, **UNDOCUMENTED, **{m: () for m in NO_ARGS}}
    made = {m for m, _ in fake_trt.CALLS}
    unknown = made - set(table)
    assert not unknown, f"calls with no documented signature in the table: {sorted(unknown)}"
    assert not set(DOCUMENTED) - made, f"table entries the run never exercised: {sorted(set(DOCUMENTED) - made)}"
    wrong = []
    for method, args in fake_trt.CALLS:
        want = table[method]
        if len(args) != len(want) or not all(_kind_ok(v, k) for v, (_, k) in zip(args, want)):
            wrong.append(f"{method}{tuple(type(a).__name__ for a in args)}; documented {[(n, getattr(k, '__name__', k)) for n, k in want]}")
    assert not wrong, "calls with other argument kinds than documented:\n" + "\n".join(wrong)
    assert made >= {"Context.set_tensor_address", "Context.execute_async_v3", "Runtime.engine_host_code_allowed=",
                    "BuilderConfig.set_flag", "BuilderConfig.hardware_compatibility_level=", "Engine.get_tensor_format"}


def test_the_logger_is_one_object_whose_severity_changes_in_place(tmp_path, kitti_config, fake_trt):
    from pointpillars_trt.errors import ConfigError
    from pointpillars_trt.tensorrt import api

    a = api.process_logger("warning")
    b = api.process_logger("verbose")
    assert a is b and a.min_severity is fake_trt.Logger.VERBOSE
    assert api.make_logger("info") is a and a.min_severity is fake_trt.Logger.INFO
    _run_everything(tmp_path, kitti_config, fake_trt)  # a build and a run: still the one logger
    assert len(fake_trt.LOGGERS) == 1
    with pytest.raises(ConfigError, match="severity"):
        api.process_logger("loud")


def test_logger_is_created_in_one_place_only():
    """Statically: ``trt.Logger(`` appears once in the package, in the cached ``_the_logger``."""
    sites = []
    for path in SCANNED:
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "trt.Logger":
                    sites.append((path.name, fn.name, [ast.unparse(d) for d in fn.decorator_list]))
    assert len(sites) == 1 and sites[0][:2] == ("api.py", "_the_logger") and "lru_cache" in sites[0][2][0]


def test_set_tensor_address_checks_256_byte_alignment(tmp_path, kitti_config, fake_trt):
    from pointpillars_trt.errors import EngineError
    from pointpillars_trt.tensorrt import api

    runner = _run_everything(tmp_path, kitti_config, fake_trt)
    base = 0x7F0000000000
    with pytest.raises(EngineError, match=r"pfn\.plan: the device address 0x7f0000013880 of tensor 'num_points' is not 256-byte aligned"):
        runner.bind("num_points", base + 20000 * 4)  # lane 1 of a [B, 20000] int32 tensor, unpadded
    fake_trt.CALLS.clear()
    with pytest.raises(EngineError, match="'features'"):
        api.set_tensor_address(runner.execution.context, "features", base + 8, "x")
    assert not fake_trt.CALLS  # refused before TensorRT is called


@pytest.mark.parametrize("max_pillars", [1, 63, 64, 20000, 12000, 40000, 12345])
def test_every_lanes_addresses_are_aligned_with_an_aligned_stride(max_pillars):
    from pointpillars_trt.tensorrt.api import TENSOR_ALIGNMENT, aligned_nbytes, check_alignment

    for itemsize, row in ((4, 1), (2, 32 * 10), (4, 64), (2, 64)):
        stride = aligned_nbytes(max_pillars * row * itemsize)
        assert stride >= max_pillars * row * itemsize and stride - max_pillars * row * itemsize < TENSOR_ALIGNMENT
        for lane in range(8):
            check_alignment(f"lane{lane}", 0x7F0000000000 + lane * stride, "x")
