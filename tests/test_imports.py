"""The package's import graph has no circle: each module can be read, and tested, below the ones that use it.

Imports inside functions count: they hide a circle from the interpreter, not from a reader. An edge to the
bare package (`from elasticity import x` also names `elasticity`) is not a dependency on another module.
"""

import importlib
import pkgutil
from pathlib import Path

import elasticity
from elasticity import results


def import_graph() -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (module level or in a function)."""
    sources = {}
    for info in pkgutil.walk_packages(elasticity.__path__, "elasticity."):
        if not info.ispkg:
            module = importlib.import_module(info.name)
            sources[info.name] = (Path(module.__file__).read_text(), results._package_of(module))
    return {name: set(results._elasticity_imports(source, package)) & (sources.keys() - {name})
            for name, (source, package) in sources.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_circles_finds_a_circle_and_nothing_else():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert {"elasticity.models", "elasticity.compression", "elasticity.archive"} <= graph.keys()
    assert circles(graph) == []
