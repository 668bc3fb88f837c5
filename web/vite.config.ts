import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Production build served by Envoy (see tools/web.py): hashed files under assets/,
// one chunk per route (React.lazy) plus shared vendor chunks.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 900,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
