import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The release build made by `cargo leptos build --release`, started from the
// repository root on its own port so a dev server on 3000 does not interfere.
export const port = Number(process.env.PARLEY_E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;

export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  // Every test chats on the same server, and every message reaches every
  // connected page: one test at a time keeps each conversation to itself.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: 'list',
  use: {
    baseURL,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: chromiumArgs,
    },
    trace: 'retain-on-failure',
  },
  webServer: {
    command: './target/release/server',
    cwd: '..',
    url: baseURL,
    // A fresh database per run: the page shows stored history, and tests
    // expect none from earlier runs. No resume grace period: a closed page
    // leaves at once, and its nickname is free for the next test; the
    // tests of resuming run servers of their own (tests/server.ts).
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      RUST_LOG: 'warn',
      DATABASE_URL: `sqlite://${path.join(mkdtempSync(path.join(tmpdir(), 'parley-e2e-')), 'e2e.db')}`,
      PARLEY_RESUME_GRACE_SECS: '0',
    },
    reuseExistingServer: false,
    timeout: 30_000,
  },
});
