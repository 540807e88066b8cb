import { defineConfig } from "vite";

// Relative asset paths: the same build is served at /console/ and at /portal/.
// No inline script or style may reach index.html: the server's CSP forbids both.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: false, // dist/.gitkeep must survive: the binary embeds the folder
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    target: "es2022",
    sourcemap: false,
  },
});
