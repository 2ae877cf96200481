import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const repoRoot = path.resolve(__dirname, '..', '..');

/** A fresh, empty database for one server (or one server restarted). */
export function freshDatabase(): string {
  return `sqlite://${path.join(mkdtempSync(path.join(tmpdir(), 'parley-e2e-')), 'e2e.db')}`;
}

/** A server of a test's own on `port`, so stopping it leaves the shared one
 *  alone; restarted with the same `databaseUrl`, it keeps its history.
 *  `env` adds to (or overrides) its environment. */
export async function startServer(
  port: number,
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const server = spawn('./target/release/server', [], {
    cwd: repoRoot,
    env: {
      ...process.env,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      RUST_LOG: 'warn',
      DATABASE_URL: databaseUrl,
      PARLEY_RESUME_GRACE_SECS: '2',
      ...env,
    },
    stdio: 'inherit',
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}`)).ok) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server did not start');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function stopServer(server: ChildProcess) {
  if (server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
}
