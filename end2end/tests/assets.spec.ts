import { test, expect } from '@playwright/test';
import { brotliCompressSync } from 'node:zlib';

// The release build is precompressed (cargo leptos build --precompress): the
// server hands out the .br file to browsers that accept brotli, untouched
// otherwise.
for (const file of ['/pkg/parley.wasm', '/pkg/parley.js']) {
  test(`${file} is served brotli-compressed to browsers that accept it`, async ({ request }) => {
    const compressed = await request.get(file, { headers: { 'Accept-Encoding': 'br' } });
    expect(compressed.status()).toBe(200);
    expect(compressed.headers()['content-encoding']).toBe('br');

    const plain = await request.get(file, { headers: { 'Accept-Encoding': 'identity' } });
    expect(plain.status()).toBe(200);
    expect(plain.headers()['content-encoding']).toBeUndefined();
    expect(Number(compressed.headers()['content-length'])).toBeLessThan(
      Number(plain.headers()['content-length']) / 2,
    );
  });
}

// Everything the browser runs for the page: these two files, and the early
// script inline in the page (its theme before the first paint). Issue 16
// sets a budget of 160 KiB; the page is about 196 KiB today, so this guard
// keeps it from growing while the rest is found (see BENCHMARKS.md).
const GUARD_KIB = 198;

test(`the page, wasm and js after brotli, stays within ${GUARD_KIB} KiB`, async ({ request }) => {
  const html = await (await request.get('/')).text();
  const inline = [...html.matchAll(/<script>([^<]*)<\/script>/g)].map((m) => m[1]).join('');
  expect(inline).toContain('localStorage');
  let total = brotliCompressSync(inline).length;
  for (const file of ['/pkg/parley.wasm', '/pkg/parley.js']) {
    const response = await request.get(file, { headers: { 'Accept-Encoding': 'br' } });
    expect(response.headers()['content-encoding']).toBe('br');
    total += Number(response.headers()['content-length']);
  }
  expect(total).toBeGreaterThan(0);
  expect(total, `${total} bytes`).toBeLessThanOrEqual(GUARD_KIB * 1024);
});
