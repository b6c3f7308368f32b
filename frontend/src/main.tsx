import { createRoot } from "react-dom/client";
import { setCsrfToken } from "./api";
import { App } from "./App";
import { allowSecretListing } from "./components/SchemaForm";
import "@xyflow/react/dist/style.css";
import "./styles.css";

const root = document.getElementById("editor-root");
if (root) {
  setCsrfToken(root.dataset.csrf || "");
  allowSecretListing(root.dataset.canListSecrets === "true");
  createRoot(root).render(
    <App
      flowId={Number(root.dataset.flowId)}
      canRun={root.dataset.canRun === "true"}
      canEdit={root.dataset.canEdit === "true"}
    />,
  );
}
