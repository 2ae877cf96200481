import { test, expect, Browser } from '@playwright/test';
import net from 'node:net';
import { Person } from './chat';
import { port as mainPort } from '../playwright.config';
import { freshDatabase, startServer, stopServer } from './server';

// Servers of these tests' own (an empty history each), on ports after the
// shared one's and connection.spec's.
const ownPort = mainPort + 2;
const proxyPort = mainPort + 3;
const urlOf = (port: number) => `http://127.0.0.1:${port}`;
const offline = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws\?resume' failed/;

/** Sends `count` messages `prefix 1` … through a page of its own, each
 *  acknowledged (stored) before it returns. */
async function sendMany(browser: Browser, baseURL: string, prefix: string, count: number) {
  const sender = await Person.join(browser, baseURL);
  await sender.page.evaluate(
    async ({ prefix, count }) => {
      const socket = new WebSocket(`ws://${location.host}/ws?resume`);
      await new Promise((resolve) => socket.addEventListener('open', resolve));
      socket.send(JSON.stringify({ type: 'resume', payload: { token: null, after: null } }));
      let acked = 0;
      const done = new Promise<void>((resolve) =>
        socket.addEventListener('message', (event) => {
          if (JSON.parse(event.data).type === 'ack' && ++acked === count) resolve();
        }),
      );
      // Under the rate limit: a burst of 20, then 10 a second.
      for (let i = 1; i <= count; i++) {
        socket.send(
          JSON.stringify({ type: 'message', payload: { text: `${prefix} ${i}`, client_id: `${prefix}-${i}` } }),
        );
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1_100));
      }
      await done;
      socket.close();
    },
    { prefix, count },
  );
  await sender.leave();
}

test('a page opened after messages were sent shows them at once, without JavaScript too', async ({
  browser,
  baseURL,
}) => {
  const a = await Person.join(browser);
  const stamp = Date.now();
  await a.say(`stored ${stamp}`);
  await expect(a.messages.filter({ hasText: `stored ${stamp}` })).toHaveAttribute('data-state', 'sent');

  const b = await Person.join(browser);
  await expect(b.allMessages.filter({ hasText: `stored ${stamp}` })).toHaveCount(1);

  const context = await browser.newContext({ javaScriptEnabled: false, baseURL });
  const page = await context.newPage();
  await page.goto('/');
  const list = page.getByRole('list', { name: 'Messages' });
  await expect(list.locator('li.message').filter({ hasText: `Anonymous: stored ${stamp}` })).toHaveCount(1);
  await expect(list.locator('li.message time').last()).toHaveText(/^\d\d:\d\d UTC$/);
  await context.close();

  // Hydrated: the same line once, its time now in the reader's time zone.
  await expect(b.allMessages.filter({ hasText: `stored ${stamp}` }).locator('time')).not.toHaveText(/UTC/);
  await a.leave();
  await b.leave();
});

test('scrolling to the top, or the button there, pages in older messages until the beginning', async ({
  browser,
}) => {
  // Sending 120 messages under the rate limit alone takes 13 s.
  test.setTimeout(60_000);
  const server = await startServer(ownPort, freshDatabase());
  try {
    const baseURL = urlOf(ownPort);
    await sendMany(browser, baseURL, 'old', 120);
    const a = await Person.join(browser, baseURL);
    // The sender's page and socket stay listed for the grace period; their
    // leave lines, appended later, would scroll the list to its end.
    await expect(a.online.getByRole('heading')).toHaveText('1 online');
    const said = a.allMessages.locator('.says');
    await expect(said.last()).toHaveText('Anonymous: old 120');
    const shown = await said.count();
    expect(shown).toBeLessThan(120);
    await expect(a.page.getByText('Beginning of the conversation')).toBeHidden();

    // Scrolled to the top: the page before, above, without the view jumping.
    const firstShown = await said.first().textContent();
    await a.list.evaluate((list) => (list.scrollTop = 0));
    await expect.poll(() => said.count()).toBeGreaterThan(shown);
    await expect(a.allMessages.filter({ hasText: firstShown! })).toBeInViewport();
    expect(await a.list.evaluate((list) => list.scrollTop)).toBeGreaterThan(0);

    // The button does the same, page after page, until the beginning.
    const button = a.page.getByRole('button', { name: 'Load older messages' });
    while (await button.isVisible()) {
      const before = await said.count();
      // A click without scrolling the button into view first: scrolled to
      // the top, the list pages in by itself, and the last page replaces
      // the button with the beginning while a scrolling click waits.
      await button.dispatchEvent('click');
      await expect
        .poll(async () => (await said.count()) > before || !(await button.isVisible()))
        .toBe(true);
    }
    await expect(a.page.getByText('Beginning of the conversation')).toBeVisible();
    const texts = await said.allTextContents();
    expect(texts).toEqual(Array.from({ length: 120 }, (_, i) => `Anonymous: old ${i + 1}`));
    await a.leave();
  } finally {
    await stopServer(server);
  }
});

test('a reload keeps the nickname', async ({ browser }) => {
  const server = await startServer(ownPort, freshDatabase());
  try {
    const baseURL = urlOf(ownPort);
    const a = await Person.join(browser, baseURL);
    const b = await Person.join(browser, baseURL);
    await a.setNickname('reloaded');
    await a.page.reload();
    await a.waitOnline();
    await expect(a.page.getByTestId('current-nickname')).toHaveText('reloaded');
    await a.say('after the reload');
    await expect(b.said.last()).toHaveText('reloaded: after the reload');
    // The same person throughout: B saw no leave and no second join.
    await expect(b.systemLines.filter({ hasText: /left|joined/ })).toHaveCount(0);
    await a.leave();
    await b.leave();
  } finally {
    await stopServer(server);
  }
});

/** A TCP proxy to the server that a test can cut and restore. */
class Proxy {
  private server = net.createServer((client) => this.pipe(client));
  private sockets = new Set<net.Socket>();

  constructor(private readonly port: number, private readonly target: number) {}

  private pipe(client: net.Socket) {
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
    }
    client.pipe(upstream).pipe(client);
  }

  listen() {
    return new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
  }

  /** Every connection dropped, and no new ones until `listen` again. */
  cut() {
    for (const socket of this.sockets) socket.destroy();
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

test('a page cut off comes back by itself, with what it missed once and in order, as the same person', async ({
  browser,
}) => {
  const server = await startServer(ownPort, freshDatabase());
  const proxy = new Proxy(proxyPort, ownPort);
  await proxy.listen();
  try {
    const a = await Person.join(browser, urlOf(proxyPort));
    const b = await Person.join(browser, urlOf(ownPort));
    await a.setNickname('alice');
    await expect(b.onlinePeople.filter({ hasText: 'alice' })).toHaveCount(1);

    await proxy.cut();
    await expect(a.status).toHaveText('Offline');
    for (const text of ['missed 1', 'missed 2', 'missed 3']) await b.say(text);
    await proxy.listen();
    await a.waitOnline();

    await expect(a.said).toHaveText(['Anonymous: missed 1', 'Anonymous: missed 2', 'Anonymous: missed 3']);
    await expect(a.page.getByTestId('current-nickname')).toHaveText('alice');
    await a.say('back');
    await expect(b.said.last()).toHaveText('alice: back');
    // Within the grace period: for B, alice never left.
    await expect(b.systemLines.filter({ hasText: /alice (left|joined)/ })).toHaveCount(0);

    a.forgive(offline);
    await a.leave();
    await b.leave();
  } finally {
    await proxy.cut();
    await stopServer(server);
  }
});

test('after a server restart both pages reconnect by themselves, keep their nicknames and see each message once', async ({
  browser,
}) => {
  const database = freshDatabase();
  let server = await startServer(ownPort, database);
  try {
    const baseURL = urlOf(ownPort);
    const a = await Person.join(browser, baseURL);
    const b = await Person.join(browser, baseURL);
    await a.setNickname('ann');
    await b.setNickname('ben');

    await stopServer(server);
    await expect(a.status).toHaveText('Offline');
    await expect(b.status).toHaveText('Offline');
    server = await startServer(ownPort, database);
    await a.waitOnline();
    await b.waitOnline();
    await expect(a.page.getByTestId('current-nickname')).toHaveText('ann');
    await expect(b.page.getByTestId('current-nickname')).toHaveText('ben');

    await a.say('after the restart');
    await b.say('me too');
    const expected = ['ann: after the restart', 'ben: me too'];
    await expect(a.said).toHaveText(expected);
    await expect(b.said).toHaveText(expected);

    for (const person of [a, b]) {
      person.forgive(offline);
      await person.leave();
    }
  } finally {
    await stopServer(server);
  }
});
