"""The package's layers import one way (commands -> study -> stages -> core), with no
import circles; imports inside functions count."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lower layers never import higher ones; packages of one layer do not import each other.
CORE = 0
LAYERS = {
    "electra_tf.pretraining": 1, "electra_tf.finetuning": 1, "data_prep": 1,
    "electra_tf.tlm": 2, "electra_tf.baselines": 2,
    "electra_tf.study": 3,
}
COMMANDS = 4  # electra_tf.run_* and electra_tf.flag_docs


def _modules() -> dict[str, str]:
    found = {}
    for root in ("electra_tf", "data_prep"):
        for folder, _, names in os.walk(os.path.join(ROOT, root)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[module.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, anywhere in its code."""
    path = MODULES[module]
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved and resolved != module and not module.startswith(resolved + "."):
                found.add(resolved)
    return found


def layer_of(module: str) -> tuple[int, str]:
    """(layer, the package that owns `module` within its layer)."""
    if module.startswith("electra_tf.run_") or module == "electra_tf.flag_docs":
        return COMMANDS, module
    for package, layer in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return layer, package
    return CORE, "core"


def test_layers_import_downward_only():
    wrong = []
    for module in MODULES:
        layer, package = layer_of(module)
        for imported in imports_of(module):
            their_layer, their_package = layer_of(imported)
            upward = their_layer > layer
            sideways = (their_layer == layer and their_package != package
                        and layer not in (CORE, COMMANDS))
            if upward or sideways:
                wrong.append(f"{module} (layer {layer}) imports {imported} "
                             f"(layer {their_layer})")
    assert not wrong, "\n".join(wrong)


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    graph = {module: {m for m in imports_of(module) if m in MODULES} for module in MODULES}
    # A package's __init__ re-exporting its own modules is not a circle.
    for module in graph:
        graph[module] = {m for m in graph[module] if not m.startswith(module + ".")}
    assert not _circles(graph)


def test_the_circle_check_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module, layer", [("electra_tf.files", CORE),
                                           ("electra_tf.training.run_dir", CORE),
                                           ("electra_tf.tlm.trainer", 2),
                                           ("electra_tf.run_tlm", COMMANDS)])
def test_layer_of(module, layer):
    assert module in MODULES
    assert layer_of(module)[0] == layer
