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

// The page under its Content-Security-Policy (server/src/headers.rs): the
// early script by its hash, Leptos' scripts by the response's nonce, the
// wasm and the WebSocket are let in, so Chromium reports no violation while
// the page hydrates and connects. A script injected afterwards is refused,
// and reported: the listener does hear violations.
test('the page hydrates and connects under its Content-Security-Policy, with no violation', async ({ page }) => {
  const violations: string[] = [];
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) violations.push(message.text());
  });
  const response = await page.goto('/');
  const headers = response!.headers();
  expect(headers['content-security-policy']).toContain("script-src 'self' 'sha256-");
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('no-referrer');
  await expect(page.locator('main[data-connection="online"]')).toBeVisible();
  expect(violations).toEqual([]);

  const ran = await page.evaluate(() => {
    const injected = document.createElement('script');
    injected.textContent = 'window.injectedRan = true';
    document.head.append(injected);
    return (window as unknown as { injectedRan?: boolean }).injectedRan ?? false;
  });
  expect(ran).toBe(false);
  await expect.poll(() => violations.length).toBe(1);
  expect(violations[0]).toContain('inline script');
});
