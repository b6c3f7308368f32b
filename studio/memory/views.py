"""Settings → Memory: the embedder new namespaces get, each namespace's retention policy, its
counts and sizes, recent purges, and "forget this subject"; and a namespace's own page: its
items (pin, unpin, delete) and a test search. Owners and admins only."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render

from studio.api import keyset_page
from studio.governance.redaction import tenant_rules
from studio.memory import embedders, selectors, services
from studio.tenants.services import tenant_settings_set
from studio.tenants.views import member_required

DAY_S = 86_400
ITEMS_PER_PAGE = 50
TEST_SEARCH_K = 5


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
            "rules": list(tenant_rules(tenant.settings)),
            "purges": selectors.purge_list(tenant=tenant),
            "http_shapes": list(embedders.HTTP_SHAPES),
        },
    )


def _page_cursor(raw: str | None) -> int | None:
    """``?before=`` of the items page: an item id, anything else the first page."""
    return int(raw) if raw and raw.isdigit() else None


def _item_action(request, namespace: str) -> None:
    """Pin, unpin or delete one item, as the POST says; the outcome as a message."""
    tenant, actor = request.actor.tenant, request.actor.label
    action, raw_id = request.POST.get("action"), request.POST.get("item", "")
    item_id = int(raw_id) if raw_id.isdigit() else 0
    if action in ("pin", "unpin"):
        done = services.memory_set_pinned(tenant=tenant, namespace=namespace, item_id=item_id,
                                          pinned=action == "pin", actor=actor) is not None  # fmt: skip
        verb = "pinned: retention keeps it" if action == "pin" else "unpinned"
    elif action == "delete":
        done = services.memory_delete(tenant=tenant, namespace=namespace, item_id=item_id, actor=actor)
        verb = "deleted"
    else:
        messages.error(request, f"Unknown action {action!r}.")
        return
    if done:
        messages.success(request, f"Item {item_id} {verb}.")
    else:
        messages.error(request, f"Item {raw_id or '?'} is not in {namespace} (deleted meanwhile?).")


def _test_search(request, tenant, namespace: str) -> dict:
    """``?q=`` run through the namespace's search as a flow would, or nothing asked."""
    query = request.GET.get("q", "")
    if not query.strip():
        return {"query": query, "hits": None, "error": ""}
    try:
        hits = selectors.memory_search(tenant=tenant, namespace=namespace, query=query, k=TEST_SEARCH_K)
    except (services.MemoryValidationError, services.EmbedderUnavailable) as exc:
        return {"query": query, "hits": None, "error": str(exc)}
    return {"query": query, "hits": hits, "error": ""}


@member_required("settings.view")
def namespace_items(request, name: str):
    tenant = request.actor.tenant
    if request.method == "POST":
        _item_action(request, name)
        return redirect(request.get_full_path())
    [row] = selectors.namespace_list(tenant=tenant, name=name) or [None]
    if row is None:
        raise Http404("no such memory namespace")
    namespace = selectors.namespace_get(tenant=tenant, name=name)
    subject = request.GET.get("subject", "").strip()
    before = _page_cursor(request.GET.get("before"))
    rows = selectors.item_list(namespace=namespace, subject=subject or None, before=before)
    items, next_url = keyset_page(request, list(rows[: ITEMS_PER_PAGE + 1]), ITEMS_PER_PAGE)
    return render(
        request,
        "memory/namespace.html",
        {
            "nav": "settings",
            "section": "memory",
            "ns": row,
            "ttl_days": round(row["ttl_seconds"] / DAY_S, 3) if row["ttl_seconds"] else None,
            "items": items,
            "subject": subject,
            "paged": before is not None,
            "next_url": next_url,
            "search": _test_search(request, tenant, name),
            "search_k": TEST_SEARCH_K,
        },
    )
