"""What the HTTP node and the agent's HTTP tools share: policy, capability, the call."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from flows.connectors import ConnectorError, HttpPolicy, HttpRequest, breaker_for, http_call
from flows.nodes.base import NodeContext, NodeError

HTTP_PROPERTIES: dict[str, dict] = {
    "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
    "url": {"type": "string", "format": "template", "minLength": 1, "title": "URL"},
    "headers": {"type": "object", "additionalProperties": {"type": "string", "format": "template"}},
    "body": {"title": "Body (JSON or template)"},
    "auth_secret": {"type": "string", "format": "secret-ref", "title": "Bearer token credential"},
    "response_schema": {"type": "object", "title": "Response JSON Schema"},
}


def http_capability(url: str) -> str:
    """``http:<host>`` for a literal host; ``http:*`` when the host itself is templated."""
    if "{" in url.split("/")[2 if "://" in url else 0]:
        return "http:*"
    host = urlsplit(url).hostname
    return f"http:{host}" if host else "http:*"


def tenant_http_policy(ctx: NodeContext) -> HttpPolicy:
    conf = (ctx.tenant.settings or {}).get("http", {})
    return HttpPolicy(
        allowed_hosts=list(conf.get("allowed_hosts", [])), allow_private=bool(conf.get("allow_private"))
    )


MAX_HOSTS = 200
HOST_PATTERN = re.compile(r"^(?=.*[a-z0-9])[a-z0-9*?.:\[\]-]{1,253}$")


def http_settings_from_text(*, hosts_text: str, allow_private: bool) -> dict:
    """The tenant's outbound HTTP settings (``settings["http"]``, read by ``tenant_http_policy``)
    from text: one host pattern per line; blank lines and ``#`` comments are skipped."""
    hosts = []
    for number, line in enumerate(hosts_text.splitlines(), start=1):
        host = line.strip().lower()
        if not host or host.startswith("#"):
            continue
        if "://" in host or "/" in host or not HOST_PATTERN.match(host):
            raise ValidationError({"allowed_hosts": f"line {number}: {line.strip()[:60]!r} is not a host name "
                                                    "or pattern (e.g. api.example.com or *.example.com)"})  # fmt: skip
        if host not in hosts:
            hosts.append(host)
    if len(hosts) > MAX_HOSTS:
        raise ValidationError({"allowed_hosts": f"at most {MAX_HOSTS} hosts"})
    return {"allowed_hosts": hosts, "allow_private": allow_private}


def call_http(ctx: NodeContext, spec: dict, *, connector: str, key_suffix: str = "") -> Any:
    """Render ``spec`` (method, url, headers, body), check the capability, make the call."""
    url = ctx.render_text(spec["url"])
    # Checked against the host actually called, so a templated host cannot slip past the grant.
    ctx.require(f"http:{urlsplit(url).hostname}")
    headers = {k: str(v) for k, v in ctx.render(spec.get("headers", {})).items()}
    if spec.get("auth_secret"):
        headers["Authorization"] = f"Bearer {ctx.secret(spec['auth_secret'])}"
    request = HttpRequest(
        method=spec.get("method", "GET"),
        url=url,
        headers=headers,
        body=ctx.render(spec["body"]) if "body" in spec else None,
        timeout_s=ctx.timeout_s,
        idempotency_key=ctx.idempotency_key + key_suffix,
        response_schema=spec.get("response_schema"),
    )
    ctx.recorded_inputs.setdefault("requests", []).append({"method": request.method, "url": url})
    try:
        result = http_call(
            request,
            policy=tenant_http_policy(ctx),
            breaker=breaker_for(tenant_id=ctx.tenant.id, connector=connector),
        )
    except ConnectorError as exc:
        raise NodeError(str(exc), retryable=exc.retryable, details={"status": exc.status}) from None
    return {"status": result.status, "body": result.body, "headers": result.headers}
