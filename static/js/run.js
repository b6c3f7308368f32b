/* A run's trace, live: while the run goes on, each event on ws/runs/<id>/ has the server render
 * the changing part again (one renderer: the page's own template), and a dropped socket is
 * reopened with backoff, reading the page again on reconnect so a lost event loses nothing. */
(() => {
  "use strict";

  const root = document.getElementById("run-live");
  const liveState = document.getElementById("run-live-state");
  if (!root) return;
  const runId = root.dataset.runId;
  const finished = () => document.getElementById("run-state")?.dataset.finished === "true";

  let socket = null;
  let retries = 0;
  let timer = null;
  let inFlight = false;
  let again = false;

  function showState(state, text) {
    liveState.hidden = !state;
    liveState.dataset.state = state || "";
    liveState.textContent = text || "";
  }

  function openSteps() {
    return new Set([...root.querySelectorAll("details.step[open]")].map((d) => d.dataset.step));
  }

  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const response = await fetch(`${location.pathname}?fragment=1`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const html = await response.text();
      const open = openSteps();
      const scroll = window.scrollY;
      root.innerHTML = html;
      for (const details of root.querySelectorAll("details.step")) {
        if (open.has(details.dataset.step)) details.open = true;
      }
      window.scrollTo(0, scroll);
      if (finished()) stop("Finished");
    } catch (error) {
      showState("reconnecting", "Could not refresh; retrying…");
      schedule(2000);
    } finally {
      inFlight = false;
      if (again) { again = false; schedule(0); }
    }
  }

  function schedule(delay = 120) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  function stop(text) {
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
    showState("", "");
    if (text) showState("done", text);
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${proto}//${location.host}/ws/runs/${runId}/`);
    socket.onopen = () => { retries = 0; showState("live", "Live"); };
    // The snapshot sent on (re)connect and every update alike: render the page's part again.
    socket.onmessage = () => schedule();
    socket.onclose = () => {
      socket = null;
      if (finished()) return;
      showState("reconnecting", "Reconnecting…");
      const delay = Math.min(10000, 500 * 2 ** retries++);
      setTimeout(connect, delay);
    };
  }

  if (!finished()) connect();
})();
