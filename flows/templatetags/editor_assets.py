"""``{% editor_assets "editor" %}``: the tags for one entry of the committed Vite build.

The build (``frontend/``, ``npm run build``) writes ``static/editor/manifest.json`` mapping each
entry to its hashed files; reading it here keeps templates free of file names that change with
every build.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from django import template
from django.conf import settings
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

MANIFEST = "editor/manifest.json"


class EditorBuildMissing(RuntimeError):
    pass


@lru_cache(maxsize=1)
def _cached_manifest() -> dict:
    return _read_manifest()


def _read_manifest() -> dict:
    path = finders.find(MANIFEST)
    if not path:
        raise EditorBuildMissing(
            f"static/{MANIFEST} is missing: build the editor with `cd frontend && npm ci && npm run build`"
        )
    return json.loads(Path(path).read_text(encoding="utf-8"))


def editor_manifest() -> dict:
    # In DEBUG a rebuild shows up without a restart; otherwise the file is read once.
    return _read_manifest() if settings.DEBUG else _cached_manifest()


@register.simple_tag
def editor_assets(entry: str = "editor") -> SafeString:
    chunk = editor_manifest()["entries"][entry]
    base = "editor/"
    styles = format_html_join(
        "\n", '<link rel="stylesheet" href="{}">', ((static(base + css),) for css in chunk.get("css", []))
    )
    preloads = format_html_join(
        "\n", '<link rel="modulepreload" href="{}">', ((static(base + f),) for f in chunk.get("imports", []))
    )
    script = format_html('<script type="module" src="{}"></script>', static(base + chunk["file"]))
    return format_html("{}\n{}\n{}", styles, preloads, script)
