"""Every config field is read somewhere in the package: a setting that `--help` describes but no code reads is a
promise the run does not keep.

The check is static: a leaf field `name` of section class C counts as read when some module (other than the
config's own definition and the override parser) reads `.name` — or `getattr(x, "name")` — on an expression that
can hold a C: the attribute that holds it (`config.executor.name`, `c.learner.name`), a name ending in
`_cfg`/`_config` after it (`logging_cfg.name`), a variable assigned from it (`alg = config.algorithm`), a parameter
annotated with C, or a parameter that a call passes it to (`RewardWorker(config.reward)` → `cfg` in its
`__init__`). A same-named attribute of another object (`node.level`, the reward's `cfg.deadline_s` for the
executor's) does not count.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tracer1.config import EnvConfig, ExecutorConfig, RewardConfig, RunConfig
from tracer1.overrides import is_section

PACKAGE = Path(__file__).resolve().parent.parent / "tracer1"
NOT_READERS = {"config.py", "overrides.py"}  # the fields' definitions and the generic override parser


def sections(cls=RunConfig, holder="config", out=None) -> dict[type, set[str]]:
    """Each section class → the attribute names that hold one (the root: `config`)."""
    out = {} if out is None else out
    out.setdefault(cls, set()).add(holder)
    for name, info in cls.model_fields.items():
        if is_section(info.annotation):
            sections(info.annotation, name, out)
    return out


def leaves() -> list[tuple[str, type, str]]:
    """(dotted path, section class, field name) of every leaf field."""
    found = []

    def walk(cls, prefix):
        for name, info in cls.model_fields.items():
            if is_section(info.annotation):
                walk(info.annotation, f"{prefix}{name}.")
            else:
                found.append((f"{prefix}{name}", cls, name))
    walk(RunConfig, "")
    return found


def last_name(node) -> str | None:
    """`cfg` for `self.cfg` or `cfg`, `learner` for `config.cluster.learner`; None for other expressions."""
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def callee(call: ast.Call) -> str | None:
    """The function or class a call runs: `f` for `f(...)`/`self.f(...)`; `Cls` for a Ray actor made with
    `make_actor(Cls, ...).remote(...)` (also through `.options(...)`)."""
    func = call.func
    if last_name(func) != "remote":
        return last_name(func)
    inner = func.value
    while isinstance(inner, ast.Call) and last_name(inner.func) == "options":
        inner = inner.func.value
    return last_name(inner.args[0]) if isinstance(inner, ast.Call) and inner.args else None


def package_trees() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE.parent)): ast.parse(p.read_text(encoding="utf-8"))
            for p in sorted(PACKAGE.rglob("*.py")) if p.name not in NOT_READERS}


def receivers(trees: dict[str, ast.Module]) -> dict[type, set[tuple[str, str]]]:
    """Each section class → the (module, name) pairs that can hold one (see the module docstring)."""
    holders = sections()
    names = {cls: {(None, h) for h in hs} | {(None, f"{h}_{s}") for h in hs for s in ("cfg", "config")}
             for cls, hs in holders.items()}
    by_class_name = {cls.__name__: cls for cls in holders}
    defs = defaultdict(list)  # function/method name → its parameter names (classes: their __init__'s)
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                defs[node.name].append((module, [a.arg for a in node.args.posonlyargs + node.args.args
                                                 + node.args.kwonlyargs]))
                for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:  # annotated parameters
                    text = ast.unparse(a.annotation) if a.annotation else ""
                    for cname, cls in by_class_name.items():
                        if cname in text.replace('"', "").split(" | "):
                            names[cls].add((module, a.arg))
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        defs[node.name].append((module, [a.arg for a in item.args.posonlyargs
                                                         + item.args.args + item.args.kwonlyargs]))

    def holds(module, expr) -> set[type]:
        name = last_name(expr)
        return {cls for cls, ns in names.items() if (None, name) in ns or (module, name) in ns}

    for _ in range(3):  # aliases of aliases
        for module, tree in trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple)
                                 and isinstance(node.value, ast.Tuple) else [(target, node.value)])
                        for t, v in pairs:
                            for cls in holds(module, v):
                                if last_name(t):
                                    names[cls].add((module, last_name(t)))
                elif isinstance(node, ast.Call) and callee(node) in defs:
                    for where, params in defs[callee(node)]:
                        offset = 1 if params[:1] == ["self"] else 0
                        passed = [(params[i + offset] if i + offset < len(params) else None, a)
                                  for i, a in enumerate(node.args)] + [(k.arg, k.value) for k in node.keywords]
                        for param, value in passed:
                            for cls in holds(module, value) if param else ():
                                names[cls].add((where, param))
    return names


def reads(trees: dict[str, ast.Module]) -> set[tuple[str, str, str]]:
    """(module, receiver name, attribute) of every attribute read (not a method call) and getattr(x, "name")."""
    found = set()
    for module, tree in trees.items():
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in called:
                found.add((module, last_name(node.value), node.attr))
            elif isinstance(node, ast.Call) and last_name(node.func) == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant):
                found.add((module, last_name(node.args[0]), node.args[1].value))
    return found


def unread_fields(trees: dict[str, ast.Module]) -> list[str]:
    names, seen = receivers(trees), reads(trees)
    by_attr = defaultdict(set)
    for module, receiver, attr in seen:
        by_attr[attr].add((module, receiver))
    unread = []
    for path, cls, name in leaves():
        if not any((None, r) in names[cls] or (m, r) in names[cls] for m, r in by_attr[name]):
            unread.append(path)
    return unread


def test_every_config_field_is_read_somewhere():
    unread = unread_fields(package_trees())
    assert not unread, f"config fields read nowhere in tracer1/: {', '.join(unread)}"


def test_the_check_tells_a_field_from_a_same_named_attribute_of_something_else():
    # `reward.deadline_s` is read through the reward worker's `cfg`; the executor's field of the same name is not
    # thereby read. `env.sandbox_timeout_s` is read through `env_config`.
    names = receivers(package_trees())
    assert ("tracer1/rewards/worker.py", "cfg") in names[RewardConfig]
    assert (None, "env_config") in names[EnvConfig]
    assert ("tracer1/rewards/worker.py", "cfg") not in names[ExecutorConfig]


def test_the_check_reports_a_field_whose_only_reader_is_gone():
    trees = package_trees()
    del trees["tracer1/rewards/worker.py"]  # the only module reading the reward actors' deadline and failure value
    assert unread_fields(trees) == ["reward.deadline_s", "reward.failure_value"]
