"""Reading the Markdown docs for the docs tests: fenced blocks, links, heading anchors, the admin route table.

Shell blocks carry a tag after the language (docs/conventions.md, "Docs"): `bash run-local` blocks are run
against a local stack by tests/integration/test_docs_commands.py; the other tags say why a block is not run.

`.venv/bin/python -m tests.docs_support` rewrites the admin route table in docs/api.md from the admin app's
OpenAPI document (tests/unit/test_docs.py fails while the table and the document disagree).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# Why a shell block is (not) run; docs/conventions.md explains each.
SHELL_TAGS = {"run-local", "aws", "docker", "localstack", "openai", "dev"}
API_DOC = ROOT / "docs" / "api.md"
ROUTES_START = "<!-- admin-routes:start (generated: .venv/bin/python -m tests.docs_support) -->"
ROUTES_END = "<!-- admin-routes:end -->"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"(?P<id>[^\"]+)\"")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    tags: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    """The docs the tests hold to the rules: README.md and everything under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def split_fences(text: str) -> tuple[list[str], list[tuple[int, str, str]]]:
    """(lines outside fenced blocks, with blocks blanked; [(line, info string, body)])."""
    prose: list[str] = []
    blocks: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        fence, info, start = match["fence"], match["info"].strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((start + 1, info, "\n".join(body)))
        prose.extend([""] * (i - start + 1))
        i += 1
    return prose, blocks


def blocks(path: Path) -> list[Block]:
    _, found = split_fences(path.read_text())
    out = []
    for line, info, body in found:
        words = info.split()
        language = words[0].lower() if words else ""
        out.append(Block(path, line, language, tuple(words[1:]), body))
    return out


def shell_blocks(paths: list[Path] | None = None) -> list[Block]:
    return [b for p in (paths or doc_files()) for b in blocks(p) if b.language in SHELL_LANGUAGES]


def runnable_blocks() -> list[Block]:
    return [b for b in shell_blocks() if "run-local" in b.tags]


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link and image outside code."""
    prose, _ = split_fences(path.read_text())
    found = []
    for number, line in enumerate(prose, start=1):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append((number, match["target"]))
    return found


def slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = _INLINE_CODE.sub(lambda m: m.group(0).strip("`"), title)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_fences(path.read_text())
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose:
        found.update(m["id"] for m in _HTML_ANCHOR.finditer(line))
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match["title"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def admin_openapi() -> dict[str, Any]:
    from chatbot.admin.app import create_app

    return create_app().openapi()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    action: str  # the legacy action name (`/admin-api.php?action=...`), "" when there is none
    summary: str  # the first paragraph of the action's docstring


def admin_operations(openapi: dict[str, Any]) -> list[Operation]:
    """Every operation, in the document's order."""
    out = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            # FastAPI splits a docstring's first paragraph at its first line break: summary + description.
            summary = str(operation.get("summary") or "")
            rest = str(operation.get("description") or "").split("\n\n", 1)[0]
            if rest and not rest.startswith(("Permission:", "Legacy:")):
                summary = f"{summary} {rest}"
            action = str(operation.get("x-legacy-action") or "")
            out.append(Operation(method.upper(), path, action, " ".join(summary.split())))
    return out


def route_table(openapi: dict[str, Any]) -> str:
    """The admin route table of docs/api.md: REST routes only (the legacy `/admin-api.php` routes take the
    same actions by name and are described once in the text)."""
    rows = ["| route | action | what it does |", "|---|---|---|"]
    for op in admin_operations(openapi):
        if op.path.startswith("/admin-api.php"):
            continue
        action = f"`{op.action}`" if op.action else ""
        rows.append(f"| `{op.method} {op.path}` | {action} | {op.summary.replace('|', '/')} |")
    return "\n".join(rows)


def replace_route_table(text: str, table: str) -> str:
    before, start, rest = text.partition(ROUTES_START)
    _, end, after = rest.partition(ROUTES_END)
    if not start or not end:
        raise ValueError(f"docs/api.md lacks the markers {ROUTES_START!r} ... {ROUTES_END!r}")
    return f"{before}{start}\n{table}\n{end}{after}"


def main() -> int:
    text = API_DOC.read_text()
    updated = replace_route_table(text, route_table(admin_openapi()))
    if updated != text:
        API_DOC.write_text(updated)
        print("docs/api.md: admin route table updated")
    else:
        print("docs/api.md: admin route table already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
