/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The policy dcache-node sends with the dashboard; `vite preview` sends it too so
// that a violation shows up while developing, not only once the node serves dist/.
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

// Where /api, /metrics, /health and /ready go while the node does not serve dist/ itself.
const target = process.env.DCACHE_PROXY_TARGET || 'http://127.0.0.1:18080';
const proxy = Object.fromEntries(
  ['/api', '/metrics', '/health', '/ready'].map((p) => [p, { target, changeOrigin: false }]),
);

export default defineConfig({
  base: './',
  plugins: [react()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    // Nothing inlined as data: URLs (the favicon stays a file under assets/).
    assetsInlineLimit: 0,
    // No inline <script> for the modulepreload polyfill.
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
  },
  server: { proxy },
  preview: {
    proxy,
    headers: {
      'Content-Security-Policy': CSP,
      'X-Content-Type-Options': 'nosniff',
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    restoreMocks: true,
  },
});
