/* The reviewer inbox, live: ws/inbox/ events applied as they come, the API read again on every
 * (re)connect so a dropped message loses nothing. No framework: the list and the detail pane are
 * re-rendered from `state` after each change. */
(() => {
  "use strict";

  const boot = JSON.parse(document.getElementById("inbox-boot").textContent);
  const API = "/api/v1/reviews/";
  const PENDING = ["open", "claimed", "escalated"];
  const GROUPS = {
    open: PENDING,
    unclaimed: ["open", "escalated"],
    decided: ["approved", "rejected", "edited"],
    closed: ["approved", "rejected", "edited", "expired", "cancelled"],
  };

  const $ = (id) => document.getElementById(id);
  const els = {
    layout: $("inbox-layout"), empty: $("inbox-empty"), list: $("inbox-list"), detail: $("inbox-detail"),
    count: $("queue-count"), live: $("inbox-live"), badge: $("inbox-unread"),
    flow: $("f-flow"), status: $("f-status"), mine: $("f-mine"), overdue: $("f-overdue"),
    bulk: $("bulk"), bulkCount: $("bulk-count"),
  };

  const state = {
    reviews: new Map(), // id → review (API payload)
    order: [],
    selected: null,
    checked: new Set(),
    editing: false,
    edits: {},
    notice: "",
  };

  // -- helpers ---------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function duration(seconds) {
    const s = Math.abs(Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function age(review) {
    return duration((Date.now() - Date.parse(review.created_at)) / 1000);
  }

  function timeLeft(review) {
    if (!review.due_at || !PENDING.includes(review.status)) return null;
    const left = (Date.parse(review.due_at) - Date.now()) / 1000;
    return left < 0 ? { text: `overdue ${duration(left)}`, overdue: true } : { text: `${duration(left)} left`, overdue: false };
  }

  function show(value) {
    if (value === null || value === undefined) return "—";
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = boot.csrf;
      init.body = JSON.stringify(options.body);
    }
    return fetch(path, init).then(async (response) => {
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        const error = new Error((data.error && data.error.message) || `HTTP ${response.status}`);
        error.status = response.status;
        throw error;
      }
      return data;
    });
  }

  function setBadge(count) {
    if (!els.badge || typeof count !== "number") return;
    els.badge.hidden = count === 0;
    els.badge.querySelector("[data-count]").textContent = String(count);
  }

  // -- filters ---------------------------------------------------------------------------------

  function filters() {
    return {
      flow: els.flow.value, status: els.status.value, mine: els.mine.checked, overdue: els.overdue.checked,
    };
  }

  function query() {
    const f = filters();
    const params = new URLSearchParams({ status: f.status });
    if (f.flow) params.set("flow", f.flow);
    if (f.mine) params.set("assigned", "me");
    if (f.overdue) params.set("overdue", "1");
    return params;
  }

  function matches(review) {
    const f = filters();
    if (f.status !== "all" && !(GROUPS[f.status] || [f.status]).includes(review.status)) return false;
    if (f.flow && String(review.flow) !== f.flow) return false;
    if (f.mine && review.claimed_by !== boot.me && !(review.assigned_users || []).includes(boot.me)) return false;
    if (f.overdue && !(timeLeft(review) || {}).overdue) return false;
    return true;
  }

  function restoreFilters() {
    const params = new URLSearchParams(location.search);
    if (params.has("status")) els.status.value = params.get("status");
    if (params.has("flow")) els.flow.value = params.get("flow");
    els.mine.checked = params.get("assigned") === "me";
    els.overdue.checked = params.get("overdue") === "1";
  }

  // -- state -----------------------------------------------------------------------------------

  function sortOrder() {
    state.order = [...state.reviews.values()]
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id)
      .map((r) => r.id);
  }

  function replaceAll(reviews) {
    state.reviews = new Map(reviews.map((r) => [r.id, r]));
    for (const id of [...state.checked]) if (!state.reviews.has(id)) state.checked.delete(id);
    if (state.selected !== null && !state.reviews.has(state.selected)) {
      state.selected = null;
      state.editing = false;
    }
    sortOrder();
    render();
  }

  function votes(review) {
    return Array.isArray(review.approvals) ? review.approvals.length : review.votes || 0;
  }

  const refreshing = new Set();

  function refresh(id) {
    if (refreshing.has(id)) return;
    refreshing.add(id);
    api(`${API}${id}/`).then(upsert).catch(() => {}).finally(() => refreshing.delete(id));
  }

  function applySummary(summary) {
    // Events are small and go to every reviewer: merge them, and read the API only for the item
    // this page has open (not one request per event per page).
    const before = state.reviews.get(summary.id);
    const same = before && before.full && before.status === summary.status
      && before.claimed_by === summary.claimed_by && votes(before) === summary.votes;
    upsert({ ...(before || {}), ...summary, full: Boolean(same) });
  }

  function upsert(payload) {
    const review = "full" in payload ? payload : { ...payload, full: true };
    const before = state.reviews.get(review.id);
    if (matches(review)) {
      state.reviews.set(review.id, review);
    } else if (before && state.selected === review.id && !PENDING.includes(review.status)) {
      // Keep the item in view while it is selected, so its reviewer sees the outcome.
      state.reviews.set(review.id, review);
    } else {
      state.reviews.delete(review.id);
      state.checked.delete(review.id);
      if (state.selected === review.id) state.selected = null;
    }
    if (state.selected === review.id && state.editing && review.claimed_by && review.claimed_by !== boot.me) {
      state.editing = false;
      state.notice = `Claimed by ${review.claimed_by} meanwhile.`;
    }
    sortOrder();
    render();
  }

  function load() {
    history.replaceState(null, "", `${location.pathname}?${query()}`);
    return api(`${API}?${query()}`).then((data) => replaceAll(data.results));
  }

  // -- rendering -------------------------------------------------------------------------------

  function statusBadge(review) {
    return h("span", { class: `status-badge status-${review.status}` }, review.status);
  }

  function claimBadge(review) {
    if (!review.claimed_by || !PENDING.includes(review.status)) return null;
    const mine = review.claimed_by === boot.me;
    return h("span", { class: `claim${mine ? " mine" : ""}` }, mine ? "claimed by you" : `claimed by ${review.claimed_by}`);
  }

  function renderItem(review) {
    const left = timeLeft(review);
    const selected = state.selected === review.id;
    const pending = PENDING.includes(review.status);
    return h("li", {
      class: `inbox-item${selected ? " selected" : ""}${left && left.overdue ? " overdue" : ""}`,
      "data-id": review.id, "aria-selected": selected ? "true" : "false", tabindex: "-1",
      onclick: (event) => { if (event.target.type !== "checkbox") select(review.id); },
    },
      boot.can_decide && pending && !(review.quorum === 1 && review.claimed_by && review.claimed_by !== boot.me)
        ? h("input", { type: "checkbox", class: "item-check", "aria-label": `Select ${review.title}`,
            checked: state.checked.has(review.id),
            onchange: (event) => { toggleCheck(review.id, event.target.checked); } })
        : h("span", { class: "item-check-spacer" }),
      h("div", { class: "item-main" },
        h("span", { class: "item-title" }, review.title || review.node_id),
        h("span", { class: "item-meta muted small" },
          `${review.flow_name} · run #${review.run} · ${age(review)} ago`,
          left ? h("span", { class: left.overdue ? "due overdue" : "due" }, ` · ${left.text}`) : null)),
      h("div", { class: "item-side" }, statusBadge(review), claimBadge(review)));
  }

  function render() {
    const reviews = state.order.map((id) => state.reviews.get(id));
    els.layout.hidden = reviews.length === 0;
    els.empty.hidden = reviews.length !== 0;
    els.count.textContent = String(reviews.length);
    els.list.replaceChildren(...reviews.map(renderItem));
    if (els.bulk) {
      els.bulk.hidden = state.checked.size === 0;
      els.bulkCount.textContent = `${state.checked.size} selected`;
    }
    renderDetail();
  }

  function fieldRows(proposal, schema) {
    const props = (schema && schema.properties) || {};
    if (proposal && typeof proposal === "object" && !Array.isArray(proposal)) {
      return h("table", { class: "table kv" }, h("tbody", {},
        Object.entries(proposal).map(([key, value]) => h("tr", {},
          h("th", { scope: "row" }, key, key in props ? h("span", { class: "editable-mark", title: "editable" }, " ✎") : null),
          h("td", {}, h("pre", {}, show(value)))))));
    }
    return h("pre", { class: "json" }, show(proposal));
  }

  function diffTable(diff) {
    if (!diff || diff.length === 0) return h("p", { class: "muted small" }, "No change against the proposal.");
    return h("table", { class: "table diff", "aria-label": "Changes against the proposal" },
      h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Proposal"), h("th", {}, "Edited"))),
      h("tbody", {}, diff.map((d) => h("tr", {},
        h("td", {}, d.field || "(value)"),
        h("td", {}, h("del", {}, show(d.before))),
        h("td", {}, h("ins", {}, show(d.after)))))));
  }

  function computeDiff(before, after, path = "") {
    const isObj = (v) => v && typeof v === "object" && !Array.isArray(v);
    if (isObj(before) && isObj(after)) {
      const keys = [...Object.keys(before), ...Object.keys(after).filter((k) => !(k in before))];
      return keys.flatMap((key) => computeDiff(before[key], after[key], path ? `${path}.${key}` : key));
    }
    return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ field: path, before, after }];
  }

  function editedOutput(review) {
    const proposal = review.proposal;
    if (proposal && typeof proposal === "object" && !Array.isArray(proposal)) return { ...proposal, ...state.edits };
    return "value" in state.edits ? state.edits.value : proposal;
  }

  function editForm(review) {
    const schema = review.editable_schema || {};
    const props = schema.properties || {};
    const proposal = review.proposal && typeof review.proposal === "object" ? review.proposal : { value: review.proposal };
    const names = Object.keys(props).length ? Object.keys(props) : ["value"];
    const diffBox = h("div", { class: "diff-box" });
    const redrawDiff = () => diffBox.replaceChildren(diffTable(computeDiff(review.proposal, editedOutput(review))));
    redrawDiff();
    const inputs = names.map((name) => {
      const spec = props[name] || {};
      const current = name in state.edits ? state.edits[name] : proposal[name];
      const id = `edit-${name}`;
      let input;
      const parse = (raw) => {
        if (spec.type === "number" || spec.type === "integer") return raw === "" ? null : Number(raw);
        if (spec.type === "string") return raw;
        try { return JSON.parse(raw); } catch { return raw; }
      };
      if (spec.type === "boolean") {
        input = h("input", { id, type: "checkbox", checked: Boolean(current),
          onchange: (e) => { state.edits[name] = e.target.checked; redrawDiff(); } });
      } else if (spec.type === "number" || spec.type === "integer") {
        input = h("input", { id, type: "number", value: current ?? "", step: spec.type === "integer" ? "1" : "any",
          oninput: (e) => { state.edits[name] = parse(e.target.value); redrawDiff(); } });
      } else {
        const text = spec.type === "string" ? (current ?? "") : JSON.stringify(current ?? null, null, 2);
        input = h("textarea", { id, rows: String(Math.min(8, Math.max(2, String(text).split("\n").length + 1))),
          oninput: (e) => { state.edits[name] = parse(e.target.value); redrawDiff(); } });
        input.value = text;
      }
      return h("div", { class: "edit-field" }, h("label", { for: id }, spec.title || name), input,
        spec.description ? h("p", { class: "muted small" }, spec.description) : null);
    });
    return h("form", { class: "edit-form", "aria-label": "Edit the proposal",
      onsubmit: (e) => { e.preventDefault(); decide("edit"); } },
      h("h3", {}, "Edit before approving"), ...inputs,
      h("h3", {}, "Diff against the proposal"), diffBox,
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "button primary" }, "Approve with changes"),
        h("button", { type: "button", class: "button", onclick: () => { state.editing = false; render(); } }, "Cancel")));
  }

  function renderDetail() {
    const review = state.selected !== null ? state.reviews.get(state.selected) : null;
    // Re-render only when something the reviewer sees changed: never under their cursor for nothing.
    const key = JSON.stringify(review ? [review.id, review.full, review.status, review.claimed_by, votes(review),
      state.editing, state.notice, Math.floor(Date.now() / 30000)] : null);
    if (key === state.detailKey) return;
    state.detailKey = key;
    if (!review) {
      els.detail.replaceChildren(h("p", { class: "muted" }, "Select an item (j/k) to see its context and decide."));
      return;
    }
    if (!review.full) {
      // Live events carry a summary: the selected item's full context is read once, on demand.
      els.detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      refresh(review.id);
      return;
    }
    const pending = PENDING.includes(review.status);
    const heldByOther = review.quorum === 1 && review.claimed_by && review.claimed_by !== boot.me;
    const canAct = boot.can_decide && pending && !heldByOther;
    const left = timeLeft(review);
    const comment = h("textarea", { id: "review-comment", rows: "2", placeholder: "Optional comment for the record" });
    comment.value = state.comment || "";
    comment.addEventListener("input", (e) => { state.comment = e.target.value; });
    const context = review.context || {};
    const parts = [
      h("div", { class: "detail-head" },
        h("div", {}, h("h2", {}, review.title || review.node_id),
          h("p", { class: "muted small" },
            h("a", { href: `/runs/${review.run}/` }, `run #${review.run}`), " · ", h("a", { href: `/flows/${review.flow}/edit/` }, review.flow_name), ` · step ${review.node_id}`,
            ` · ${age(review)} old`, left ? h("span", { class: left.overdue ? "due overdue" : "due" }, ` · ${left.text}`) : null)),
        h("div", { class: "detail-badges" }, statusBadge(review), claimBadge(review))),
      state.notice ? h("p", { class: "notice", role: "alert" }, state.notice) : null,
      review.instructions ? h("div", { class: "instructions" }, review.instructions) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "Why review"), h("dd", {}, review.reason === "policy" ? `policy ${review.policy}` : "approval step in the flow"),
        h("dt", {}, "Reviewers"), h("dd", {}, review.assigned_users.length ? review.assigned_users.join(", ") : (review.assigned_role ? `${review.assigned_role} role` : "any reviewer")),
        review.model ? [h("dt", {}, "Model"), h("dd", {}, review.model)] : null,
        review.confidence !== null ? [h("dt", {}, "Confidence"), h("dd", {}, `${Math.round(review.confidence * 100)}%`)] : null,
        review.quorum > 1 ? [h("dt", {}, "Approvals"), h("dd", {}, `${votes(review)} of ${review.quorum}`)] : null),
      state.editing && canAct ? editForm(review) : h("section", { "aria-label": "Proposal" }, h("h3", {}, "Proposal"), fieldRows(review.proposal, review.editable_schema)),
      h("details", { class: "context" }, h("summary", {}, "Context: run inputs and step inputs"),
        h("h4", {}, "Run inputs"), h("pre", {}, show(context.run_inputs)),
        context.upstream ? [h("h4", {}, `Inputs of ${context.upstream}`), h("pre", {}, show(context.upstream_inputs))] : null),
    ];
    if (!pending) {
      parts.push(h("section", { class: "outcome", "aria-label": "Decision" },
        h("h3", {}, "Decision"),
        h("p", {}, `${review.status}${review.decided_by ? ` by ${review.decided_by}` : ""}`,
          review.decided_at ? ` · ${new Date(review.decided_at).toLocaleString()}` : ""),
        review.comment ? h("blockquote", {}, review.comment) : null,
        review.diff ? diffTable(review.diff) : null));
    } else if (boot.can_decide) {
      const claimed = review.claimed_by === boot.me;
      parts.push(h("div", { class: "decide" },
        h("label", { for: "review-comment" }, "Comment"), comment,
        h("div", { class: "actions" },
          review.quorum === 1 && !review.claimed_by ? h("button", { type: "button", class: "button", onclick: claim }, "Claim (c)") : null,
          claimed ? h("button", { type: "button", class: "button", onclick: release }, "Release") : null,
          state.editing ? null
            : h("button", { type: "button", class: "button primary", disabled: !canAct, onclick: () => decide("approve") }, "Approve (a)"),
          h("button", { type: "button", class: "button danger", disabled: !canAct, onclick: () => decide("reject") }, "Reject (r)"),
          review.editable_schema && !state.editing && review.quorum === 1
            ? h("button", { type: "button", class: "button", disabled: !canAct, onclick: startEdit }, "Edit (e)") : null)));
    }
    els.detail.replaceChildren(...parts.filter(Boolean));
  }

  // -- actions ---------------------------------------------------------------------------------

  function select(id) {
    if (state.selected !== id) {
      state.editing = false;
      state.edits = {};
      state.comment = "";
      state.notice = "";
    }
    state.selected = id;
    render();
    const item = els.list.querySelector(`[data-id="${id}"]`);
    if (item) item.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    if (state.order.length === 0) return;
    const index = state.order.indexOf(state.selected);
    const next = index === -1 ? 0 : Math.min(state.order.length - 1, Math.max(0, index + step));
    select(state.order[next]);
  }

  function toggleCheck(id, on) {
    if (on) state.checked.add(id); else state.checked.delete(id);
    render();
  }

  function fail(error) {
    state.notice = error.message;
    render();
    if (state.selected !== null) refresh(state.selected);
  }

  function current() {
    return state.selected !== null ? state.reviews.get(state.selected) : null;
  }

  function claim() {
    const review = current();
    if (!review || !boot.can_decide || !PENDING.includes(review.status)) return Promise.resolve();
    if (review.claimed_by || review.quorum > 1) {
      if (review.claimed_by && review.claimed_by !== boot.me) {
        state.notice = `Claimed by ${review.claimed_by} already.`;
        render();
      }
      return Promise.resolve();
    }
    state.notice = "";
    return api(`${API}${review.id}/claim/`, { method: "POST", body: {} }).then(upsert).catch(fail);
  }

  function release() {
    const review = current();
    if (!review) return;
    api(`${API}${review.id}/release/`, { method: "POST", body: {} }).then(upsert).catch(fail);
  }

  function startEdit() {
    const review = current();
    if (!review || !boot.can_decide || !review.editable_schema || !PENDING.includes(review.status)) return;
    if (review.quorum > 1 || (review.claimed_by && review.claimed_by !== boot.me)) return;
    const go = () => { state.editing = true; state.edits = {}; render();
      const first = els.detail.querySelector(".edit-form textarea, .edit-form input");
      if (first) first.focus(); };
    // Editing is work: take the item first, so nobody else starts on it meanwhile.
    if (review.quorum === 1 && !review.claimed_by) claim().then(() => {
      const now = current();
      if (now && now.claimed_by === boot.me) go();
    });
    else go();
  }

  function decide(decision) {
    const review = current();
    if (!review || !boot.can_decide || !PENDING.includes(review.status)) return;
    if (review.quorum === 1 && review.claimed_by && review.claimed_by !== boot.me) {
      state.notice = `Claimed by ${review.claimed_by}: only they can decide it now.`;
      render();
      return;
    }
    const body = { decision, comment: state.comment || "" };
    if (decision === "edit") body.output = editedOutput(review);
    state.notice = "";
    api(`${API}${review.id}/decide/`, { method: "POST", body })
      .then((done) => { state.editing = false; state.edits = {}; state.comment = ""; upsert(done); })
      .catch(fail);
  }

  function bulk(decision) {
    const ids = [...state.checked];
    if (ids.length === 0) return;
    api(`${API}bulk-decide/`, { method: "POST", body: { ids, decision } }).then((data) => {
      const failed = data.results.filter((r) => !r.ok);
      state.checked.clear();
      state.notice = failed.length ? `${failed.length} not decided: ${failed.map((r) => `#${r.id} ${r.message}`).join("; ")}` : "";
      return load();
    }).catch(fail);
  }

  // -- live updates ----------------------------------------------------------------------------

  let socket = null;
  let retry = 0;

  function setLive(stateName, text) {
    els.live.dataset.state = stateName;
    els.live.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/inbox/?tenant=${boot.tenant}`);
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "inbox.ready") {
        retry = 0;
        // Joined the group first, then read the queue: nothing falls between the two.
        load().then(() => setLive("live", "Live")).catch(() => setLive("offline", "Offline"));
      } else if (event.type === "review.event") {
        setBadge(event.unread);
        applySummary(event.review);
      }
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4401 || event.code === 4403) {
        setLive("offline", "Not live: no access to this inbox");
        return;
      }
      setLive("reconnecting", "Reconnecting…");
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, Math.min(10000, 250 * 2 ** retry));
    });
  }

  // -- wiring ----------------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest && event.target.closest("input, textarea, select");
    if (event.key === "Escape" && state.editing) { state.editing = false; render(); return; }
    if (typing) return;
    const actions = {
      j: () => move(1), k: () => move(-1), a: () => decide(state.editing ? "edit" : "approve"), r: () => decide("reject"),
      e: startEdit, c: claim,
    };
    if (actions[event.key]) {
      event.preventDefault();
      actions[event.key]();
    }
  });

  for (const input of [els.flow, els.status, els.mine, els.overdue]) input.addEventListener("change", () => load());
  $("inbox-filters").addEventListener("submit", (e) => e.preventDefault());
  if ($("bulk-approve")) $("bulk-approve").addEventListener("click", () => bulk("approve"));
  if ($("bulk-reject")) $("bulk-reject").addEventListener("click", () => bulk("reject"));
  setInterval(render, 30000); // ages and time left move on

  restoreFilters();
  replaceAll(boot.reviews.filter(matches));
  connect();
})();
