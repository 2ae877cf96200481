import { test, expect } from '@playwright/test';
import { Person } from './chat';
import { port as mainPort } from '../playwright.config';
import { freshDatabase, startServer as start, stopServer } from './server';

// A server of this test's own, so stopping it leaves the shared one alone.
const port = mainPort + 1;
const baseURL = `http://127.0.0.1:${port}`;
const database = freshDatabase();
const startServer = () => start(port, database);

test('the indicator shows offline while the server is gone, a message typed meanwhile waits, and the chat resumes', async ({
  browser,
}) => {
  let server = await startServer();
  try {
    const a = await Person.join(browser, baseURL);
    const b = await Person.join(browser, baseURL);
    await a.setNickname('alice');

    await stopServer(server);
    await expect(a.status).toHaveText('Offline');
    await expect(a.page.locator('main')).toHaveAttribute('data-connection', 'offline');

    // Typed while offline: shown at once as pending, and still pending.
    await a.say('typed while offline');
    const queued = a.messages.filter({ hasText: 'typed while offline' });
    await expect(queued).toHaveAttribute('data-state', 'pending');

    server = await startServer();
    await a.waitOnline();
    await b.waitOnline();
    await expect(a.status).toHaveText('Online');
    // Sent by itself after the reconnect, and acknowledged: stored once.
    await expect(queued).toHaveAttribute('data-state', 'sent');
    await expect(a.said).toHaveText(['alice: typed while offline']);

    // The nickname survives the reconnect: the page tells the new connection.
    await a.say('back again');
    await expect(b.said.last()).toHaveText('alice: back again');

    // Chromium logs the failed reconnection attempts; they are expected
    // here, and nothing else is.
    for (const person of [a, b]) {
      person.forgive(/^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws\?resume' failed/);
    }
    await a.leave();
    await b.leave();
  } finally {
    await stopServer(server);
  }
});
