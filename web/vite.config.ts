import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The console is served by `wrenn server` from web/dist (embedded by
// web.go): every asset is bundled here, nothing is fetched at run time.
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The API reference (swagger-ui) is a chunk of its own, loaded only on /docs.
    chunkSizeWarningLimit: 2048,
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a local `wrenn server`.
    proxy: {
      "/v1": { target: "http://127.0.0.1:8080", ws: true },
      "/openapi.yaml": "http://127.0.0.1:8080",
    },
  },
});
