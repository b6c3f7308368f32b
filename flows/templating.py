"""User templates and conditions, only ever in Jinja2's immutable sandbox.

Templates see ``input`` (the run's inputs), ``nodes`` (``nodes.<id>.output``) and
``tenant`` (``tenant.settings``). Anything the sandbox refuses — attribute games such
as ``''.__class__.__mro__``, calling unsafe methods, mutating data — is a
``TemplateError`` with a message fit to show the builder, never a traceback.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED_CHARS = 1_000_000


class TemplateError(Exception):
    """A template or expression that cannot be compiled or evaluated, explained in one line."""


class _Environment(ImmutableSandboxedEnvironment):
    # Bound loops: the sandbox caps range() at 100,000 by default; a flow step needs far less.
    MAX_RANGE = 10_000

    def getattr(self, obj, attribute):
        # Data first: {{ input.items }} is the "items" field of the input, not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@cache
def _env() -> _Environment:
    env = _Environment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True, finalize=_finalize
    )
    env.filters["tojson"] = _tojson
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


def _finalize(value: Any) -> Any:
    # {{ nodes.fetch.output }} in a prompt reads as JSON, not as a Python repr.
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, dict | list) else value


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


@cache
def _compile(source: str):
    try:
        return _env().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


@cache
def _compile_expression(source: str):
    try:
        return _env().compile_expression(source, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"expression syntax error: {exc.message}") from None


def render(source: str, context: dict[str, Any]) -> str:
    """Render a template string in the sandbox."""
    if "{" not in source:
        return source  # plain text: nothing to render (the common case for prompts without variables)
    template = _compile(source)
    try:
        text = template.render(**context)
    except SecurityError as exc:
        raise TemplateError(f"refused by the template sandbox: {exc}") from None
    except UndefinedError as exc:
        raise TemplateError(f"undefined in template: {exc.message}") from None
    except Exception as exc:  # a filter or test failing on the data (e.g. int('x'))
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateError(f"rendered template is over {MAX_RENDERED_CHARS:,} characters")
    return text


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like value (mappings for bodies, headers, outputs).

    A string that is exactly one ``{{ expression }}`` keeps the expression's type, so
    ``{"items": "{{ nodes.fetch.output.rows }}"}`` maps to a list, not to its text."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
            return evaluate(stripped[2:-2], context)
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate a sandboxed expression (conditions, map item lists, single-value templates)."""
    compiled = _compile_expression(expression)
    try:
        value = compiled(**context)
    except SecurityError as exc:
        raise TemplateError(f"refused by the template sandbox: {exc}") from None
    except UndefinedError as exc:
        raise TemplateError(f"undefined in expression: {exc.message}") from None
    except Exception as exc:
        raise TemplateError(f"expression failed: {type(exc).__name__}: {exc}") from None
    if isinstance(value, Undefined):
        raise TemplateError(f"undefined in expression: {expression.strip()} has no value")
    return value


def check_syntax(source: str, *, expression: bool = False) -> str | None:
    """The syntax problem of a template or expression, or None."""
    try:
        _compile_expression(source) if expression else _compile(source)
    except TemplateError as exc:
        return str(exc)
    return None


def referenced_nodes(source: str, *, expression: bool = False) -> set[str]:
    """Node ids a template reads through ``nodes.<id>`` or ``nodes['<id>']``."""
    try:
        tree = _env().parse("{{ " + source + " }}" if expression else source)
    except TemplateSyntaxError:
        return set()
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "nodes":
            if isinstance(node, nodes.Getattr):
                found.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                found.add(node.arg.value)
    return found
