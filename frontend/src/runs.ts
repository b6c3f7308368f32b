// Live run status: ws/runs/<id>/ sends a snapshot, then updates; on a dropped socket we
// reconnect and the new snapshot catches up (DESIGN.md, "Live updates").
import { api } from "./api";
import { useEditor } from "./store";

const FINISHED = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
let socket: WebSocket | null = null;
let watching = 0;

export function watchRun(runId: number) {
  watching = runId;
  if (socket) {
    socket.onclose = null;
    socket.close();
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/runs/${runId}/`);
  socket = ws;
  ws.onmessage = (msg) => {
    try {
      useEditor.getState().applyRunEvent(JSON.parse(msg.data));
    } catch {
      /* ignore a malformed frame */
    }
    const run = useEditor.getState().run;
    if (run && run.id === runId && FINISHED.has(run.status)) {
      // Fetch the full steps (inputs/outputs) once the run is over; updates carry summaries.
      Promise.resolve().then(() =>
        api("GET", `runs/${runId}/`).then((full) => {
          if (useEditor.getState().run?.id === runId) useEditor.getState().setRun(full);
        }),
      );
      ws.onclose = null;
      ws.close();
    }
  };
  ws.onclose = () => {
    if (watching === runId) setTimeout(() => watching === runId && watchRun(runId), 1500);
  };
}

export function stopWatching() {
  watching = 0;
  if (socket) {
    socket.onclose = null;
    socket.close();
    socket = null;
  }
}
