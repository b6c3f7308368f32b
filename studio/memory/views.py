"""Settings → Memory: the embedder new namespaces get, each namespace's retention policy, its
counts and sizes, recent purges, and "forget this subject". Owners and admins only."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from studio.governance.redaction import BUILTIN_RULES
from studio.memory import embedders, selectors, services
from studio.tenants.services import tenant_settings_set
from studio.tenants.views import member_required

DAY_S = 86_400


def _optional_int(raw: str | None, field: str, *, scale: int = 1) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise services.MemoryValidationError(field, "must be a number") from None
    if value <= 0:
        raise services.MemoryValidationError(field, "must be positive (or empty)")
    return int(value * scale)


def _embedder_from_post(post) -> dict:
    kind = post.get("kind", "hashing")
    if kind != "http":
        return embedders.normalize_spec(kind)
    return embedders.normalize_spec({
        "kind": "http", "shape": post.get("shape", "openai"), "url": post.get("url", "").strip(),
        "model": post.get("model", "").strip(), "dims": post.get("dims"), "secret": post.get("secret", "").strip(),
    })  # fmt: skip


@member_required("settings.view")
def settings_memory(request):
    tenant = request.actor.tenant
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "policy":
                ttl_seconds = _optional_int(request.POST.get("ttl_days"), "ttl_days", scale=DAY_S)
                max_items = _optional_int(request.POST.get("max_items"), "max_items")
                namespace = services.memory_namespace_get_or_create(
                    tenant=tenant, name=request.POST.get("namespace", "").strip()
                )
                services.memory_namespace_set_policy(
                    namespace=namespace,
                    ttl_seconds=ttl_seconds,
                    max_items=max_items,
                    redaction_rules=request.POST.getlist("redaction_rules"),
                    actor=request.actor.label,
                )
                messages.success(request, f"Retention of {namespace.name} saved.")
            elif action == "embedder":
                spec = _embedder_from_post(request.POST)
                if spec["kind"] == "minilm" and not embedders.minilm_available():
                    raise embedders.EmbedderError("MiniLM is not installed here (the 'embeddings' extra)")
                tenant_settings_set(
                    tenant=tenant, path=("memory", "embedder"), value=spec, actor=request.actor.label
                )
                messages.success(request, f"New namespaces will use {embedders.spec_label(spec)}.")
            elif action == "forget":
                counts = services.memory_forget_subject(
                    tenant=tenant, subject=request.POST.get("subject", ""), actor=request.actor.label
                )
                messages.success(request, f"Forgot {sum(counts.values())} item(s) about that subject.")
        except (
            services.MemoryValidationError,
            services.EmbedderUnavailable,
            embedders.EmbedderError,
            ValidationError,
        ) as exc:
            messages.error(request, str(exc))
        return redirect("memory:settings")
    try:
        spec = embedders.tenant_embedder_spec(tenant)
    except embedders.EmbedderError:
        spec = {"kind": "hashing"}
    namespaces = selectors.namespace_list(tenant=tenant)
    for row in namespaces:
        row["ttl_days"] = round(row["ttl_seconds"] / DAY_S, 3) if row["ttl_seconds"] else None
    return render(
        request,
        "memory/settings.html",
        {
            "nav": "settings",
            "section": "memory",
            "spec": spec,
            "spec_label": embedders.spec_label(spec),
            "hashing": spec["kind"] == "hashing",
            "minilm_available": embedders.minilm_available(),
            "namespaces": namespaces,
            "rules": list(BUILTIN_RULES),
            "purges": selectors.purge_list(tenant=tenant),
            "http_shapes": list(embedders.HTTP_SHAPES),
        },
    )
