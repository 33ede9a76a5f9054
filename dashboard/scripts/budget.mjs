#!/usr/bin/env node
// Prints the gzipped size of the initial load (dist/index.html and the JS/CSS it
// references, modulepreloads included) and fails over the budget.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUDGET_KIB = 180;

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const kib = (n) => (n / 1024).toFixed(1);

const refs = new Set();
for (const m of html.matchAll(/<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"[^>]*>/g)) {
  const tag = m[0];
  const url = m[1];
  if (/^(https?:)?\/\//.test(url) || url.startsWith('data:')) {
    console.error(`budget: external reference in index.html: ${url}`);
    process.exit(1);
  }
  if (/<script/.test(tag) || /rel="(stylesheet|modulepreload)"/.test(tag)) refs.add(url.replace(/^\.?\//, ''));
}

// Nothing inline: the node's Content-Security-Policy forbids it.
if (/<script(?![^>]*\bsrc=)[^>]*>/.test(html) || /<style\b/.test(html) || /\sstyle="/.test(html)) {
  console.error('budget: index.html has an inline script or style; the CSP refuses it');
  process.exit(1);
}

let total = gz(Buffer.from(html));
const rows = [['index.html', Buffer.byteLength(html), total]];
for (const r of refs) {
  const buf = readFileSync(join(dist, r));
  const g = gz(buf);
  total += g;
  rows.push([r, buf.length, g]);
}
for (const [name, raw, g] of rows) console.log(`  ${name.padEnd(40)} ${kib(raw).padStart(8)} KiB  ${kib(g).padStart(7)} KiB gz`);

// Everything else (pages loaded on demand), for information.
let lazy = 0;
for (const f of readdirSync(join(dist, 'assets'))) {
  const p = `assets/${f}`;
  if (!refs.has(p) && /\.(js|css)$/.test(f)) lazy += gz(readFileSync(join(dist, p)));
}
const files = readdirSync(dist).filter((f) => !['index.html', 'assets'].includes(f));
if (files.length) {
  console.error(`budget: dist/ must hold only index.html and assets/, found ${files.join(', ')}`);
  process.exit(1);
}
for (const f of readdirSync(join(dist, 'assets'))) statSync(join(dist, 'assets', f));

console.log(`initial load: ${kib(total)} KiB gzipped (budget ${BUDGET_KIB} KiB); pages loaded on demand: ${kib(lazy)} KiB gzipped`);
if (total > BUDGET_KIB * 1024) {
  console.error(`budget: initial load ${kib(total)} KiB is over the budget of ${BUDGET_KIB} KiB`);
  process.exit(1);
}
