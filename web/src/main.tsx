import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app/App";
import { silentCallback } from "./app/auth";
import { loadConfig } from "./app/config";

async function start(): Promise<void> {
  const config = await loadConfig();
  if (window.location.pathname === "/auth/silent") {
    // Inside oidc-client-ts's hidden renewal iframe: hand the result to the parent, render nothing.
    await silentCallback(config);
    return;
  }
  const root = document.getElementById("root");
  if (!root) throw new Error("no #root element");
  createRoot(root).render(
    <StrictMode>
      <App config={config} />
    </StrictMode>,
  );
}

void start();
