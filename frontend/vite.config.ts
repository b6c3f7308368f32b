import { resolve } from "node:path";
import { defineConfig } from "vite";

// No @vitejs/plugin-react: esbuild compiles TSX with the automatic JSX runtime, which is all
// this project needs (no fast refresh in production builds anyway).
export default defineConfig({
  base: "/static/editor/",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: resolve(__dirname, "../static/editor"),
    emptyOutDir: true,
    manifest: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      input: {
        editor: resolve(__dirname, "src/main.tsx"),
        bench: resolve(__dirname, "bench.html"),
        flowlist: resolve(__dirname, "src/flowlist.ts"),
      },
      // React, React Flow and friends in one cacheable chunk shared by the editor and the bench page.
      output: { manualChunks: (id) => (id.includes("node_modules") ? "vendor" : undefined) },
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
