import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build lands inside the Python package, which `cairn server` serves at /.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "../src/cairn/server/static", emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: { proxy: { "/api": "http://127.0.0.1:5000" } },
  test: { environment: "node" },
});
