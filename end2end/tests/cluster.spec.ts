import { test, expect } from '@playwright/test';
import { ChildProcess } from 'node:child_process';
import { Person } from './chat';
import {
  Nginx,
  Redis,
  freePort,
  freshPostgresDatabase,
  metric,
  startNginx,
  startRedis,
  stopNginx,
  stopRedis,
} from './cluster';
import { startServer, stopServer } from './server';

// Two server processes sharing one PostgreSQL database and one Redis, and
// nginx in front of them with README.md's configuration: every process
// here is these tests' own, on free loopback ports.
const urlOf = (port: number) => `http://127.0.0.1:${port}`;

test.describe('two server processes', () => {
  let redis: Redis | undefined;
  let nginx: Nginx | undefined;
  let ports: number[] = [];
  // Where each process serves /metrics: never on the page's port.
  let metricsPorts: number[] = [];
  const servers: ChildProcess[] = [];

  test.beforeAll(async () => {
    const database = freshPostgresDatabase();
    if (!database && process.env.CI) throw new Error('PARLEY_TEST_POSTGRES_URL must be set in CI');
    test.skip(!database, 'PARLEY_TEST_POSTGRES_URL is not set: run under scripts/with-postgres.sh');
    redis = await startRedis();
    ports = [await freePort(), await freePort()];
    metricsPorts = [await freePort(), await freePort()];
    for (const [i, port] of ports.entries()) {
      servers.push(
        await startServer(port, database!, {
          REDIS_URL: redis.url,
          PARLEY_METRICS_ADDR: `127.0.0.1:${metricsPorts[i]}`,
          PARLEY_TRUSTED_PROXIES: '127.0.0.1',
          // A closed page leaves at once, so each test starts with nobody.
          PARLEY_RESUME_GRACE_SECS: '0',
        }),
      );
    }
    nginx = await startNginx(ports.map((port) => `127.0.0.1:${port}`));
  });

  test.afterAll(async () => {
    if (nginx) await stopNginx(nginx);
    for (const server of servers) await stopServer(server);
    if (redis) await stopRedis(redis);
  });

  /** WebSockets open on each process, by its own count. */
  const connections = () =>
    Promise.all(metricsPorts.map((port) => metric(urlOf(port), 'parley_connections_open')));

  test('through nginx, two pages land on different processes and chat both ways', async ({ browser }) => {
    const a = await Person.join(browser, nginx!.url);
    // least_conn: the second WebSocket goes to the process without one.
    const b = await Person.join(browser, nginx!.url);
    await expect.poll(connections).toEqual([1, 1]);

    await a.setNickname('alice');
    await b.setNickname('bob');
    await a.say('hello from the first process');
    await expect(b.said).toHaveText(['alice: hello from the first process']);
    await b.say('hello from the second one');
    const both = ['alice: hello from the first process', 'bob: hello from the second one'];
    await expect(a.said).toHaveText(both);
    await expect(b.said).toHaveText(both);

    await a.leave();
    await b.leave();
  });

  test('pages on each process directly chat both ways', async ({ browser }) => {
    const a = await Person.join(browser, urlOf(ports[0]));
    const b = await Person.join(browser, urlOf(ports[1]));
    await expect.poll(connections).toEqual([1, 1]);

    await a.setNickname('carol');
    await b.setNickname('dave');
    await a.say('direct from carol');
    await expect(b.said).toHaveText(['carol: direct from carol']);
    await b.say('direct from dave');
    const both = ['carol: direct from carol', 'dave: direct from dave'];
    await expect(a.said).toHaveText(both);
    await expect(b.said).toHaveText(both);

    await a.leave();
    await b.leave();
  });
});
