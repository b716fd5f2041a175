import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

// `vite build` writes the app's front end to dist/ (embedded by the Tauri build).
// `vite build --mode e2e` writes dist-e2e/ with an extra page, e2e/index.html, that runs the same
// UI against a mocked backend for the browser tests; the mock never reaches dist/.
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  // Svelte's server build has no mount(); Vitest must resolve the browser one.
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  clearScreen: false,
  build:
    mode === 'e2e'
      ? {
          outDir: 'dist-e2e',
          rollupOptions: {
            input: {
              main: `${import.meta.dirname}/index.html`,
              mock: `${import.meta.dirname}/e2e/index.html`,
            },
          },
        }
      : { outDir: 'dist' },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.ts'],
  },
}));
