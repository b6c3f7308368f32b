"""``bench editor``: the flow editor in headless Chromium next to a raw React Flow page, in one run.

For each size (1,000 nodes / 1,200 edges, then 5,000 / 6,000) the same generated graph is
loaded by the editor (``/flows/<id>/edit/``, through the API, store and custom nodes) and by a
bare React Flow page built from the same project (``static/editor/bench.html``: default nodes,
no store, no level of detail). Alternating the two, it records:

- time to first render (first node in the DOM) and time to interactive (every node measured
  and shown), from navigation start;
- input events handled per second while dragging a node for two seconds, zoomed out to fit
  (where the editor draws simplified nodes) and at 100 % zoom, and while panning. Each
  ``mouse.move`` waits until the page has taken the event, so a busy main thread shows up as
  fewer events; requestAnimationFrame counts say nothing headless (BENCHMARKS.md).

Needs Debian's Chromium (``CHROMIUM``, default ``/usr/bin/chromium``) and the committed build.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from pathlib import Path

from django.conf import settings

from studio.bench import BenchError, Report, Row, Say, Target, WebServer, throwaway_tenant

FULL_SIZES = (1000, 5000)
QUICK_SIZES = (1000,)
INPUT_SECONDS = 2.0
READY_TARGET = Target("<=", 2.0)  # 1,000 nodes ready within 2x raw React Flow


def events_target(size: int) -> Target:
    # 1,000 nodes: at least 50 input events/s; 5,000 nodes: at least 30 at any zoom.
    return Target(">=", 50.0 if size <= 1000 else 30.0, on="value", unit="events/s")


def generated_graph(count: int) -> dict:
    """``count`` nodes on a grid with about 1.2 edges per node, acyclic; the same layout as
    ``frontend/src/bench/graph.ts`` so both pages draw the same picture."""
    cols = math.ceil(math.sqrt(count))
    nodes = [
        {
            "id": f"n{i}",
            "type": "trigger" if i == 0 else "transform",
            "position": {"x": (i % cols) * 260, "y": (i // cols) * 120},
            "config": {"kind": "manual"} if i == 0 else {"template": f"step {i}: {{{{ input }}}}"},
        }
        for i in range(count)
    ]
    edges = [
        {"id": f"e{i}", "source": f"n{i - 1}", "sourceHandle": "out", "target": f"n{i}", "targetHandle": "in"}
        for i in range(1, count)
    ]
    i = 0
    while len(edges) < round(count * 1.2) and i + cols < count:
        edges.append(
            {
                "id": f"x{i}",
                "source": f"n{i}",
                "sourceHandle": "out",
                "target": f"n{i + cols}",
                "targetHandle": "in",
            }
        )
        i += 5
    return {"schema": 1, "nodes": nodes, "edges": edges}


# Installed before any page script: records when the first node reaches the DOM.
FIRST_NODE_SCRIPT = """
window.__firstNode = null;
new MutationObserver((records, observer) => {
  if (document.querySelector('.react-flow__node, .graph-sketch .sketch-nodes')) {
    window.__firstNode = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""

READY_CHECK = """
() => {
  if (document.querySelector('.graph-sketch .sketch-nodes')) return true;  // the editor's overview
  const nodes = document.querySelectorAll('.react-flow__node');
  return nodes.length > 0 && !document.querySelector('.react-flow__node[style*="visibility: hidden"]');
}
"""

AFTER_PAINT = (
    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))"
)

# A node whose centre is on screen and not covered: where a drag starts.
FIND_NODE = """
() => {
  const pane = document.querySelector('.react-flow').getBoundingClientRect();
  const cx = pane.left + pane.width / 2, cy = pane.top + pane.height / 2;
  let best = null, bestD = Infinity;
  for (const el of document.querySelectorAll('.react-flow__node')) {
    const r = el.getBoundingClientRect();
    const d = (r.left + r.width / 2 - cx) ** 2 + (r.top + r.height / 2 - cy) ** 2;
    if (d >= bestD) continue;
    // Tiny nodes are mostly handles (raw React Flow's sit top and bottom centre): probe off-centre too.
    for (const [fx, fy] of [[0.5, 0.5], [0.2, 0.5], [0.8, 0.5]]) {
      const x = r.left + r.width * fx, y = r.top + r.height * fy;
      if (x < pane.left + 20 || x > pane.right - 20 || y < pane.top + 20 || y > pane.bottom - 20) continue;
      const hit = document.elementFromPoint(x, y);
      if (!hit || !el.contains(hit) || hit.closest('.react-flow__handle')) continue;
      bestD = d; best = {x, y};
      break;
    }
  }
  // The editor's overview draws far-out nodes in one SVG path; it says where one is.
  if (!best && window.__afsPickNode) best = window.__afsPickNode();
  return best;
}
"""

# An empty spot of the pane: where a pan starts.
FIND_PANE = """
() => {
  const pane = document.querySelector('.react-flow').getBoundingClientRect();
  for (let fy = 0.5; fy < 0.98; fy += 0.013) for (let fx = 0.5; fx < 0.98; fx += 0.013) {
    for (const [x, y] of [[pane.left + pane.width * fx, pane.top + pane.height * fy],
                          [pane.left + pane.width * (1 - fx), pane.top + pane.height * (1 - fy)]]) {
      const hit = document.elementFromPoint(x, y);
      if (hit && hit.classList.contains('react-flow__pane')) return {x, y};
    }
  }
  return null;
}
"""

ZOOM_TO_100 = """
() => {
  const flow = window.__afsFlow;
  const nodes = flow.getNodes();
  const mid = nodes[Math.floor(nodes.length / 2)];
  flow.setCenter(mid.position.x + 100, mid.position.y + 30, {zoom: 1});
}
"""


def _gesture(page, start: dict, seconds: float) -> float:
    """Input events the page took per second while the mouse, held down at ``start``, circles."""
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    count, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        angle = count / 6
        page.mouse.move(start["x"] + 40 * math.cos(angle) + count % 7, start["y"] + 40 * math.sin(angle))
        count += 1
    page.mouse.up()
    return count / elapsed


def measure(context, url: str, *, seconds: float) -> dict[str, float | None]:
    page = context.new_page()
    page.add_init_script(FIRST_NODE_SCRIPT)
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function(READY_CHECK, timeout=120_000, polling=50)
        ready = page.evaluate(AFTER_PAINT)
        first = page.evaluate("window.__firstNode")
        out: dict[str, float | None] = {"first_ms": first, "ready_ms": ready}
        start = page.evaluate(FIND_NODE)
        out["drag_fit"] = _gesture(page, start, seconds) if start else None
        spot = page.evaluate(FIND_PANE)
        out["pan_fit"] = _gesture(page, spot, seconds) if spot else None
        page.evaluate(ZOOM_TO_100)
        page.evaluate(AFTER_PAINT)
        page.wait_for_timeout(300)
        start = page.evaluate(FIND_NODE)
        out["drag_100"] = _gesture(page, start, seconds) if start else None
        return out
    finally:
        page.close()


def run(*, quick: bool, say: Say) -> Report:
    from flows import services
    from studio.tenants.models import Membership
    from studio.tenants.roles import Role

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise BenchError(f"Chromium not found at {chromium} (apt-get install chromium, or set CHROMIUM)")
    if not (Path(settings.BASE_DIR) / "static" / "editor" / "bench.html").exists():
        raise BenchError("static/editor/bench.html is missing: run `cd frontend && npm run build`")
    report = Report(name="editor", quick=quick)
    sizes = QUICK_SIZES if quick else FULL_SIZES
    seconds = 1.0 if quick else INPUT_SECONDS
    from django.contrib.auth import get_user_model

    with throwaway_tenant("bench-editor") as tenant:
        username, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        user = get_user_model().objects.create_user(username=username, password=password)
        Membership.objects.create(tenant=tenant, user=user, role=Role.BUILDER)
        flows = {
            size: services.flow_create(tenant=tenant, name=f"bench {size}", graph=generated_graph(size))
            for size in sizes
        }
        try:
            with WebServer(say) as server:
                results = _measure_all(
                    server.url, username, password, flows, seconds=seconds, chromium=chromium, say=say
                )
        finally:
            user.delete()
    for size in sizes:
        raw, ours = results[size]["raw"], results[size]["editor"]
        label = f"{size:,} nodes"
        report.add(Row(f"first_render_{size}", f"{label}: first render", ours["first_ms"], "ms",
                       baseline=raw["first_ms"], baseline_label=_ms(raw["first_ms"])))  # fmt: skip
        report.add(Row(f"ready_{size}", f"{label}: ready (interactive)", ours["ready_ms"], "ms",
                       baseline=raw["ready_ms"], baseline_label=_ms(raw["ready_ms"]),
                       targets=(READY_TARGET,) if size <= 1000 else ()))  # fmt: skip
        for key, what in (("drag_fit", "drag, zoomed to fit"), ("drag_100", "drag at 100 %"),
                          ("pan_fit", "pan, zoomed to fit")):  # fmt: skip
            report.add(Row(f"{key}_{size}", f"{label}: {what}", ours[key], "events/s", baseline=raw[key],
                           baseline_label=_rate(raw[key]), targets=(events_target(size),),
                           error="" if ours[key] is not None else "no spot to start the gesture"))  # fmt: skip
        report.runs += 2
    report.notes.append(
        "baseline: raw React Flow 12 (default nodes, no store) on the same graph, measured in this run. "
        "The editor renders only visible elements above 300 nodes, draws simplified nodes and one SVG path "
        "of edges below 45 % zoom, and below 20 % zoom on 1,000+ nodes an overview (unselected nodes are "
        "rectangles of one SVG path that still select and drag), where 'ready' means the overview is drawn"
    )
    return report


def _ms(value: float | None) -> str:
    return f"raw {value:,.0f} ms" if value is not None else "raw —"


def _rate(value: float | None) -> str:
    return f"raw {value:.1f}/s" if value is not None else "raw —"


def _measure_all(url, username, password, flows, *, seconds, chromium, say) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict[int, dict[str, dict]] = {}
    # Playwright's sync API runs an event loop in this thread; no ORM use happens inside.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])  # fmt: skip
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            login = context.new_page()
            login.goto(url + "/login/")
            login.get_by_label("Username").fill(username)
            login.get_by_label("Password").fill(password)
            login.get_by_role("button", name="Log in").click()
            login.wait_for_url("**/flows/")
            login.close()
            for size, flow in flows.items():
                results[size] = {}
                # Alternate, so both pages see the same moment of a shared machine.
                for name, page_url in (("raw", f"{url}/static/editor/bench.html?nodes={size}"),
                                       ("editor", f"{url}/flows/{flow.pk}/edit/")):  # fmt: skip
                    say(f"{size:,} nodes: {name}…")
                    results[size][name] = measure(context, page_url, seconds=seconds)
                    say(f"  {_summary(results[size][name])}")
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    return results


def _summary(r: dict) -> str:
    def f(v, unit):
        return "—" if v is None else f"{v:,.0f}{unit}" if unit == " ms" else f"{v:.1f}{unit}"

    return (
        f"first {f(r['first_ms'], ' ms')}, ready {f(r['ready_ms'], ' ms')}, drag(fit) {f(r['drag_fit'], '/s')}, "
        f"pan(fit) {f(r['pan_fit'], '/s')}, drag(100%) {f(r['drag_100'], '/s')}"
    )
