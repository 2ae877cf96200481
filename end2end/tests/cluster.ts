// Processes for tests of several servers: a throwaway Redis, nginx in front
// (with the configuration from README.md's "Behind nginx"), and a fresh
// PostgreSQL database. Each runs on a free loopback port with a temporary
// directory, as the test's own process: no system service is used.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const repoRoot = path.resolve(__dirname, '..', '..');

/** A loopback port nobody listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Waits until `check` says yes, or fails after `ms`. */
async function waitFor(what: string, check: () => Promise<boolean>, process: ChildProcess, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (process.exitCode !== null || process.signalCode !== null) {
      throw new Error(`${what} exited (${process.exitCode ?? process.signalCode}) before it was ready`);
    }
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sends `request` to 127.0.0.1:`port` and resolves with the first bytes of
 *  the answer, or '' if there is none. */
function ask(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(1_000, () => socket.destroy());
    socket.on('connect', () => socket.write(request));
    socket.on('data', (data) => {
      answer += data.toString();
      socket.end();
    });
    socket.on('error', () => resolve(''));
    socket.on('close', () => resolve(answer));
  });
}

async function stop(process: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') {
  if (process.exitCode !== null || process.signalCode !== null) return;
  const exited = new Promise((resolve) => process.once('exit', resolve));
  process.kill(signal);
  await exited;
}

export interface Redis {
  port: number;
  url: string;
  process: ChildProcess;
  dir: string;
}

/** Debian's redis-server on a free port: no persistence, a throwaway
 *  directory, ready once it answers PING. */
export async function startRedis(): Promise<Redis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'parley-redis-'));
  const port = await freePort();
  const process = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitFor('redis-server', async () => (await ask(port, 'PING\r\n')).startsWith('+PONG'), process);
  return { port, url: `redis://127.0.0.1:${port}`, process, dir };
}

export async function stopRedis(redis: Redis) {
  await stop(redis.process, 'SIGKILL');
  rmSync(redis.dir, { recursive: true, force: true });
}

export interface Nginx {
  port: number;
  url: string;
  process: ChildProcess;
  dir: string;
}

/** README.md's nginx configuration, in front of `upstreams` (host:port),
 *  listening on 127.0.0.1:`port`, with its pid file, logs and temporary
 *  files in `dir`. The README's is the one tested, so it keeps working. */
export function nginxConfig(upstreams: string[], port: number, dir: string): string {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split('\n## Behind nginx\n')[1];
  const block = section?.match(/```nginx\n([\s\S]*?)```/)?.[1];
  if (!block) throw new Error('README.md has no nginx configuration under "## Behind nginx"');
  const servers = upstreams.map((upstream) => `        server ${upstream};`).join('\n');
  const config = block
    .replace(/^(\s*upstream parley \{\n\s*least_conn;\n)(\s*server .*;\n)+/m, `$1${servers}\n`)
    .replace(/^(\s*)listen .*;$/m, `$1listen 127.0.0.1:${port};`)
    .replace(
      /^http \{$/m,
      [
        'http {',
        '    access_log off;',
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
          (kind) => `    ${kind}_temp_path ${path.join(dir, kind)};`,
        ),
      ].join('\n'),
    );
  for (const upstream of upstreams) {
    if (!config.includes(`server ${upstream};`)) throw new Error('the upstream servers were not replaced');
  }
  if (!config.includes(`listen 127.0.0.1:${port};`)) throw new Error('the listen directive was not replaced');
  return [
    `pid ${path.join(dir, 'nginx.pid')};`,
    `error_log ${path.join(dir, 'error.log')} warn;`,
    config,
  ].join('\n');
}

/** Debian's nginx as a process of this test's own (not the system service):
 *  `nginx -p <dir> -c <dir>/nginx.conf -g 'daemon off;'`. */
export async function startNginx(upstreams: string[]): Promise<Nginx> {
  const dir = mkdtempSync(path.join(tmpdir(), 'parley-nginx-'));
  // As root, nginx's workers run as `nobody`: they must reach the
  // temporary directories nginx makes for them in here.
  chmodSync(dir, 0o755);
  const port = await freePort();
  writeFileSync(path.join(dir, 'nginx.conf'), nginxConfig(upstreams, port, dir));
  const nginx = process.env.NGINX_PATH ?? '/usr/sbin/nginx';
  const child = spawn(
    nginx,
    ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  try {
    await waitFor(
      'nginx',
      async () => (await ask(port, 'GET /healthz HTTP/1.0\r\n\r\n')).startsWith('HTTP/1.1'),
      child,
    );
  } catch (error) {
    await stop(child, 'SIGKILL');
    let log = '';
    try {
      log = readFileSync(path.join(dir, 'error.log'), 'utf8');
    } catch {
      // no log yet
    }
    throw new Error(`${error}\nnginx's error log:\n${log}`);
  }
  return { port, url: `http://127.0.0.1:${port}`, process: child, dir };
}

/** Stops nginx (SIGQUIT: a graceful shutdown) and deletes its directory. */
export async function stopNginx(nginx: Nginx) {
  await stop(nginx.process, 'SIGQUIT');
  rmSync(nginx.dir, { recursive: true, force: true });
}

/** A new, empty database on the PostgreSQL server of
 *  PARLEY_TEST_POSTGRES_URL (scripts/with-postgres.sh sets it), or
 *  undefined where there is none. */
export function freshPostgresDatabase(): string | undefined {
  const admin = process.env.PARLEY_TEST_POSTGRES_URL;
  if (!admin) return undefined;
  const name = `parley_e2e_${process.pid}_${Date.now()}`;
  execFileSync('psql', [admin, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `CREATE DATABASE ${name}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return `${admin.slice(0, admin.lastIndexOf('/'))}/${name}`;
}

/** The value of a metric without labels in a server's /metrics, at
 *  `metricsURL` (its PARLEY_METRICS_ADDR: the page's address has none). */
export async function metric(metricsURL: string, name: string): Promise<number> {
  const response = await fetch(`${metricsURL}/metrics`);
  if (!response.ok) throw new Error(`${metricsURL}/metrics: ${response.status}`);
  const text = await response.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}
