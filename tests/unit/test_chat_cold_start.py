"""Cold start of the chat function: importing it must not import what only some requests need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The openai SDK alone takes about a second to import; the chat service, uploads and the OpenAI-compatible
# formatting load on first use.
LAZY = (
    "openai",
    "httpx2",
    "chatbot.services.chat",
    "chatbot.services.uploads",
    "chatbot.upstream.chat_gateway",
)


def test_import_chat_function_leaves_heavy_modules_for_first_use():
    code = (
        "import json, sys; import functions.chat.app as app; "
        f"print(json.dumps({{m: m in sys.modules for m in {list(LAZY)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not any(loaded.values()), loaded
