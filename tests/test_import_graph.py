"""The import graph of mailcore/ and panel/: no circles, and every import points down a layer.

The graph counts every import a file holds: at the top, inside functions, and under
TYPE_CHECKING, so a circle cannot hide in a function or a type hint. There is no list of
exceptions: a lower layer that needs work done above it reports what happened or calls
mailcore.hooks (see docs in that module and DESIGN.md, "Packages and the way dependencies
point").
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mailcore", "panel")

# The layers inside mailcore, lowest first; a module imports only its own layer or lower
# ones. Modules named in no layer (addresses, dbpool, sessions, proxy, ...) are shared
# plumbing: they may import nothing from the protocol-server layer or above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("models", ("mailcore.models",)),
    ("message model", ("mailcore.message",)),
    ("store and directory", ("mailcore.store", "mailcore.directory", "mailcore.claims")),
    ("sending, queue, inbound checks and customer services", (
        "mailcore.sending", "mailcore.queue", "mailcore.inbound", "mailcore.selfservice",
        "mailcore.dnscheck")),
    ("protocol servers, webmail services and tasks", (
        "mailcore.imap", "mailcore.smtp", "mailcore.pop3", "mailcore.webclient",
        "mailcore.tasks")),
    ("start-up wiring", ("mailcore.servers", "mailcore.management", "mailcore.apps",
                         "mailcore.admin")),
)
SERVERS_LAYER = 4
# Side by side in the servers' layer, none of these imports another (webmail calls the
# store and sending services, never IMAP; the protocols share only the layers below).
SIBLINGS = LAYERS[SERVERS_LAYER][1]
# These import nothing else of mailcore: the models and the message model are what the
# rest is built on, and the hooks are the registry every layer may call.
SELF_CONTAINED = ("mailcore.models", "mailcore.message", "mailcore.hooks")
# The web tier calls services; it never runs or imports a mail protocol server.
NOT_FOR_THE_WEB = ("mailcore.imap", "mailcore.smtp", "mailcore.pop3", "mailcore.listeners",
                   "mailcore.servers", "mailcore.supervisor", "mailcore.sessions")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _modules() -> dict[str, Path]:
    """Return every module of ours by dotted name (migrations aside: they import models)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Return the modules of ours a file imports anywhere in it (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    targets: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # "from mailcore import dbpool" imports the module dbpool, not the package.
                targets.add(known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules
                            else known(base))
    return {t for t in targets if t is not None and t != name}


@functools.cache
def graph() -> dict[str, frozenset[str]]:
    modules = _modules()
    return {name: frozenset(_imported(path, name, modules)) for name, path in modules.items()}


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Return one circle (a list of modules, the first repeated last) per tangled group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_circle_in(group, edges) for group in groups]


def _circle_in(group: set[str], edges: dict[str, frozenset[str]]) -> list[str]:
    """Return a shortest path from the group's first module back to itself."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no circle in {sorted(group)}")


def _layer(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(_within(module, p) for p in prefixes):
            return rank
    return None


def _edges() -> list[tuple[str, str]]:
    return [(source, target) for source, targets in graph().items() for target in sorted(targets)]


def test_the_graph_counts_imports_inside_functions_and_type_checking_blocks() -> None:
    # apps.ready() imports the tasks; principal imports Mailbox for type hints only.
    assert "mailcore.tasks" in graph()["mailcore.apps"]
    assert "mailcore.models" in graph()["mailcore.principal"]
    assert len(graph()) > 100


def test_no_modules_import_each_other_in_a_circle() -> None:
    circles = [" -> ".join(circle) for circle in _cycles(graph())]
    assert circles == []


def test_it_finds_and_names_a_circle() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a", "d"}),
             "d": frozenset()}
    assert _cycles(edges) == [["a", "b", "c", "a"]]


def test_each_layer_imports_only_its_own_and_lower_layers() -> None:
    wrong = []
    for source, target in _edges():
        target_rank = _layer(target)
        if target_rank is None or not source.startswith("mailcore."):
            continue
        source_rank = _layer(source)
        ceiling = SERVERS_LAYER - 1 if source_rank is None else source_rank
        if target_rank > ceiling:
            wrong.append(f"{source} imports {target} ({LAYERS[target_rank][0]})")
    assert wrong == []


def test_the_protocol_servers_webmail_and_tasks_import_none_of_each_other() -> None:
    wrong = [f"{source} imports {target}" for source, target in _edges()
             for a in SIBLINGS for b in SIBLINGS
             if a != b and _within(source, a) and _within(target, b)]
    assert wrong == []


def test_the_models_message_model_and_hooks_import_nothing_else_of_mailcore() -> None:
    wrong = [f"{source} imports {target}" for source, target in _edges()
             for own in SELF_CONTAINED
             if _within(source, own) and not _within(target, own)]
    assert wrong == []


def test_mailcore_never_imports_panel() -> None:
    wrong = [f"{source} imports {target}" for source, target in _edges()
             if _within(source, "mailcore") and _within(target, "panel")]
    assert wrong == []


def test_the_web_tier_calls_services_never_the_mail_protocol_servers() -> None:
    wrong = [f"{source} imports {target}" for source, target in _edges()
             if _within(source, "panel") and any(_within(target, p) for p in NOT_FOR_THE_WEB)]
    assert wrong == []
