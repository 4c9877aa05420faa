#!/usr/bin/env python3
"""Import cycles between the modules of a crate.

Usage: scripts/module-cycles.py CRATE_SRC [--allow]

Each source file is a module (src/a/b.rs and src/a/b/mod.rs are `a::b`).
A module depends on another when it names it through `crate::...`,
`super::...` or, for its own child modules, a relative `child::...` path
(in `use` lines or paths in code); `mod x;` declarations are not
dependencies. Prints every group of modules that depend on each other
in a circle (strongly connected components of two or more), and exits 1
when there is one, unless --allow is given (to report on a crate that still
has cycles without failing).

Cheap (no compiler involved), so scripts/test.sh runs it on `domain`.
"""

import re
import sys
from pathlib import Path

PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\};", re.S)
COMMENT_RE = re.compile(r"//[^\n]*")


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def resolve(base: tuple, head: str, rest: list, modules: set) -> tuple | None:
    if head == "crate":
        path = []
    else:
        path = list(base[:-1])
        while rest and rest[0] == "super":
            rest = rest[1:]
            path = path[:-1]
    # An item of the module the path starts from is a dependency on it.
    best = tuple(path)
    for segment in rest:
        path.append(segment)
        if tuple(path) in modules:
            best = tuple(path)
        else:
            break
    return best


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    allow = "--allow" in sys.argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(args[0])
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(src, f): f for f in files}
    edges = {m: set() for m in modules}
    for module, file in modules.items():
        text = COMMENT_RE.sub("", file.read_text())
        # Unit tests (by convention the file's last item) are not the
        # module's dependencies.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests\b", text)[0]
        refs = []
        for head, tail in PATH_RE.findall(text):
            refs.append((head, [s for s in tail.split("::") if s]))
        # `use crate::{a::X, b}`: each item of the group.
        for head, group in USE_GROUP_RE.findall(text):
            for item in re.split(r",(?![^{]*\})", group):
                names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", item)
                if names:
                    refs.append((head, names))
        for head, rest in refs:
            target = resolve(module, head, rest, set(modules))
            if target is not None and target != module and target != ():
                edges[module].add(target)
        # A child module named by a relative path (`ssr::RequestCx` in
        # `auth`): a dependency on the child.
        for child in (m for m in modules if len(m) == len(module) + 1 and m[:-1] == module):
            if re.search(r"(?<![A-Za-z0-9_:])" + child[-1] + r"::", text):
                edges[module].add(child)

    # Tarjan's strongly connected components.
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in modules:
        if v not in index:
            visit(v)

    name = lambda m: "::".join(m) or "crate"
    print(f"{src}: {len(modules)} modules, {sum(len(e) for e in edges.values())} dependencies")
    if not groups:
        print("no import cycles")
        return 0
    for group in groups:
        print(f"cycle of {len(group)}: " + ", ".join(name(m) for m in group))
    return 0 if allow else 1


if __name__ == "__main__":
    sys.exit(main())
