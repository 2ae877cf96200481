import { test, expect, Page } from '@playwright/test';
import { Person } from './chat';

/** A room name of this run's own: earlier runs' history stays elsewhere. */
const stamp = Date.now().toString(36);
const roomName = (label: string) => `${label}-${stamp}`;

const roomsNav = (page: Page) => page.getByRole('navigation', { name: 'Rooms' });
/** The sidebar's link to `room`: named `#room` and its online count. */
const roomLink = (page: Page, room: string) =>
  roomsNav(page).locator(`a[href="${room === 'general' ? '/' : `/r/${room}`}"]`);

test('people in two rooms do not see each other’s messages', async ({ browser }) => {
  const [red, blue] = [roomName('red'), roomName('blue')];
  const a = await Person.join(browser, undefined, `/r/${red}`);
  const b = await Person.join(browser, undefined, `/r/${blue}`);
  const c = await Person.join(browser, undefined, `/r/${red}`);
  await a.say('only for red');
  await b.say('only for blue');
  await expect(c.said).toHaveText(['Anonymous: only for red']);
  await expect(b.said).toHaveText(['Anonymous: only for blue']);
  // b's own message is acknowledged: anything for red would have come by now.
  await expect(b.messages).toHaveAttribute('data-state', 'sent');
  await expect(a.said).toHaveText(['Anonymous: only for red']);
  await expect(a.online.getByRole('heading')).toHaveText('2 online');
  await expect(b.online.getByRole('heading')).toHaveText('1 online');
  for (const person of [a, b, c]) await person.leave();
});

test('the sidebar lists the rooms with live counts, the current one marked', async ({ browser }) => {
  const [green, amber] = [roomName('green'), roomName('amber')];
  const a = await Person.join(browser, undefined, `/r/${green}`);
  await expect(a.page).toHaveTitle(`#${green} · Parley`);
  await expect(a.page.locator('.current-room')).toHaveText(`#${green}`);
  await expect(roomLink(a.page, green)).toHaveAttribute('aria-current', 'page');
  await expect(roomsNav(a.page).getByRole('link', { name: `#${green} 1` })).toBeVisible();
  await expect(roomLink(a.page, green)).toHaveAttribute('href', `/r/${green}`);
  await expect(roomLink(a.page, green)).toHaveAttribute('data-online', '1');
  await expect(roomLink(a.page, 'general')).toHaveAttribute('href', '/');
  await expect(roomLink(a.page, 'general')).not.toHaveAttribute('aria-current', /./);

  const b = await Person.join(browser, undefined, `/r/${green}`);
  await expect(roomLink(a.page, green)).toHaveAttribute('data-online', '2');
  const c = await Person.join(browser, undefined, `/r/${amber}`);
  await expect(roomLink(a.page, amber)).toHaveAttribute('data-online', '1');
  await expect(roomLink(c.page, green)).toHaveAttribute('data-online', '2');
  await b.leave();
  await expect(roomLink(a.page, green)).toHaveAttribute('data-online', '1');
  await c.leave();
  await expect(roomLink(a.page, amber)).toHaveCount(0);
  await a.leave();
});

test('a room link switches rooms without a reload, and back returns', async ({ browser }) => {
  const [home, away] = [roomName('home'), roomName('away')];
  const a = await Person.join(browser, undefined, `/r/${home}`);
  const b = await Person.join(browser, undefined, `/r/${away}`);
  await a.say('said at home');
  await b.say('said away');
  await expect(b.messages).toHaveAttribute('data-state', 'sent');
  await a.page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 1));

  await roomLink(a.page, away).click();
  await expect(a.page).toHaveURL(new RegExp(`/r/${away}$`));
  await expect(a.page).toHaveTitle(`#${away} · Parley`);
  await expect(a.page.locator('.current-room')).toHaveText(`#${away}`);
  await expect(roomLink(a.page, away)).toHaveAttribute('aria-current', 'page');
  await expect(a.allMessages.locator('.says')).toHaveText(['Anonymous: said away']);
  await expect(a.online.getByRole('heading')).toHaveText('2 online');
  await a.waitOnline();
  // Heard in the new room, and heard there.
  await b.say('welcome');
  await expect(a.allMessages.locator('.says')).toHaveText(['Anonymous: said away', 'Anonymous: welcome']);
  await a.say('thanks');
  await expect(b.said.last()).toHaveText('Anonymous: thanks');

  await a.page.goBack();
  await expect(a.page).toHaveURL(new RegExp(`/r/${home}$`));
  await expect(a.page).toHaveTitle(`#${home} · Parley`);
  await expect(a.allMessages.locator('.says')).toHaveText(['Anonymous: said at home']);
  await expect(a.online.getByRole('heading')).toHaveText('1 online');
  await a.page.goForward();
  await expect(a.allMessages.locator('.says')).toHaveText([
    'Anonymous: said away',
    'Anonymous: welcome',
    'Anonymous: thanks',
  ]);
  expect(await a.page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(1);
  await a.leave();
  await b.leave();
});

test('the form joins a room by name, and says what is wrong with a bad one', async ({ browser }) => {
  const made = roomName('made');
  const a = await Person.join(browser);
  await a.page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 1));
  const field = a.page.getByLabel('Join or create a room');
  await field.fill('Bad Name');
  await field.press('Enter');
  await expect(roomsNav(a.page)).toContainText('1 to 32 of a-z, 0-9, - and _');
  await expect(a.page).toHaveURL(/\/$/);

  await field.fill(made);
  await field.press('Enter');
  await expect(a.page).toHaveURL(new RegExp(`/r/${made}$`));
  await expect(roomLink(a.page, made)).toHaveAttribute('aria-current', 'page');
  await expect(roomsNav(a.page)).not.toContainText('1 to 32');
  await expect(a.page.locator('main[data-connection="online"]')).toBeVisible();
  await expect(a.online.getByRole('heading')).toHaveText('1 online');
  expect(await a.page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(1);
  await a.leave();
});

test('a name that is not a room’s answers 404', async ({ request }) => {
  for (const path of ['/r/Bad%20Name', '/r/UPPER', '/r/a.b']) {
    expect((await request.get(path)).status(), path).toBe(404);
  }
  expect((await request.get(`/r/${roomName('fine')}`)).status()).toBe(200);
});

test('a room’s first paint shows its messages, without JavaScript too', async ({ browser, baseURL }) => {
  const kept = roomName('kept');
  const a = await Person.join(browser, undefined, `/r/${kept}`);
  await a.say('stored in kept');
  await expect(a.messages).toHaveAttribute('data-state', 'sent');

  const context = await browser.newContext({ javaScriptEnabled: false, baseURL });
  const page = await context.newPage();
  await page.goto(`/r/${kept}`);
  await expect(page).toHaveTitle(`#${kept} · Parley`);
  const list = page.getByRole('list', { name: 'Messages' });
  await expect(list.locator('li.message .says')).toHaveText(['Anonymous: stored in kept']);
  await expect(roomLink(page, kept)).toHaveAttribute('aria-current', 'page');
  await expect(roomLink(page, 'general')).toBeVisible();
  // general's first paint does not have it.
  await page.goto('/');
  await expect(page.getByRole('list', { name: 'Messages' })).not.toContainText('stored in kept');
  await context.close();
  await a.leave();
});
