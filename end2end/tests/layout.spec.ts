import { test, expect, Page } from '@playwright/test';
import { Person } from './chat';

// Writing, the keyboard, the themes and the layout from phone to desktop.
const stamp = Date.now().toString(36);
const room = (label: string) => `/r/${label}-${stamp}`;

const phone = { viewport: { width: 360, height: 740 } };
const box = (page: Page) => page.getByLabel('Message', { exact: true });

test('Enter sends, Shift+Enter starts a new line, and the box keeps the focus', async ({ browser }) => {
  const a = await Person.join(browser, undefined, room('compose'));
  const b = await Person.join(browser, undefined, room('compose'));
  await box(a.page).click();
  await a.page.keyboard.type('line one');
  await a.page.keyboard.press('Shift+Enter');
  await a.page.keyboard.type('line two');
  await expect(box(a.page)).toHaveValue('line one\nline two');
  await a.page.keyboard.press('Enter');
  await expect(b.messages.last().locator('.text')).toHaveText('line one\nline two');
  await expect(box(a.page)).toHaveValue('');
  await expect(box(a.page)).toBeFocused();

  // Sent with the button, the focus comes back to the box too.
  await box(a.page).fill('by the button');
  await a.page.getByRole('button', { name: 'Send' }).click();
  await expect(b.said.last()).toHaveText('Anonymous: by the button');
  await expect(box(a.page)).toBeFocused();
  await a.leave();
  await b.leave();
});

test('near the limit the box counts what is left, and a refused message keeps its text', async ({ browser }) => {
  const a = await Person.join(browser, undefined, room('limit'));
  const remaining = a.page.locator('#message-remaining');
  await box(a.page).fill('x'.repeat(1000));
  await expect(remaining).toBeHidden();
  await box(a.page).fill('x'.repeat(1900));
  await expect(remaining).toHaveText('100 characters left');
  await expect(box(a.page)).toHaveAttribute('aria-describedby', 'message-remaining');
  const tooLong = 'y'.repeat(2005);
  await box(a.page).fill(tooLong);
  await expect(remaining).toHaveText('5 characters too many');
  await box(a.page).press('Enter');
  await expect(a.page.getByRole('alert')).toHaveText('message must be at most 2000 characters');
  await expect(box(a.page)).toHaveValue(tooLong);
  await expect(a.messages).toHaveCount(0);
  await a.leave();
});

test('the keyboard alone skips to the message box and sends, with the focus always visible', async ({ browser }) => {
  const a = await Person.join(browser, undefined, room('keys'));
  const b = await Person.join(browser, undefined, room('keys'));
  await a.page.keyboard.press('Tab');
  const skip = a.page.getByRole('link', { name: 'Skip to the message box' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  await expect(skip).toHaveCSS('outline-style', 'solid');
  await a.page.keyboard.press('Enter');
  await expect(box(a.page)).toBeFocused();
  await a.page.keyboard.type('typed, never clicked');
  await a.page.keyboard.press('Enter');
  await expect(b.said.last()).toHaveText('Anonymous: typed, never clicked');
  // Every control on the way is reachable by Tab, each with a visible ring.
  await a.page.keyboard.press('Tab');
  await expect(a.page.getByRole('button', { name: 'Send' })).toBeFocused();
  await expect(a.page.getByRole('button', { name: 'Send' })).toHaveCSS('outline-style', 'solid');
  await a.leave();
  await b.leave();
});

test('the theme follows the system until chosen, and the choice is remembered', async ({ browser }) => {
  const context = await browser.newContext({ colorScheme: 'dark' });
  const page = await context.newPage();
  await page.goto(room('theme'));
  const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const toggle = page.getByRole('switch', { name: 'Dark theme' });
  await expect(toggle).toBeChecked();
  expect(await background()).toBe('rgb(17, 19, 24)');
  await toggle.uncheck();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');
  expect(await background()).toBe('rgb(243, 244, 247)');
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');
  await expect(toggle).not.toBeChecked();
  expect(await background()).toBe('rgb(243, 244, 247)');
  // Another browser, dark by its system, has chosen nothing.
  const other = await browser.newContext({ colorScheme: 'dark' });
  const fresh = await other.newPage();
  await fresh.goto(room('theme'));
  await expect(fresh.getByRole('switch', { name: 'Dark theme' })).toBeChecked();
  await expect(fresh.locator('html')).not.toHaveAttribute('data-theme', /./);
  await context.close();
  await other.close();
});

test('on a phone the rooms and the people fold into toggles, and nothing overflows', async ({ browser }) => {
  const a = await Person.join(browser, undefined, room('phone'), phone);
  const rooms = a.page.getByRole('navigation', { name: 'Rooms' });
  await expect(rooms).toBeHidden();
  await expect(a.online).toBeHidden();
  await a.say(`a-long-word-without-spaces-${'x'.repeat(120)} https://example.com/${'y'.repeat(120)}`);
  await expect(a.messages.last()).toHaveAttribute('data-state', 'sent');
  const overflow = () => a.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(await overflow()).toBe(0);

  await a.page.getByRole('button', { name: 'People' }).click();
  await expect(a.online).toBeVisible();
  await expect(a.online.getByRole('heading')).toHaveText('1 online');
  await a.page.keyboard.press('Escape');
  await expect(a.online).toBeHidden();

  await a.page.getByRole('button', { name: 'Rooms' }).click();
  await expect(rooms).toBeVisible();
  expect(await overflow()).toBe(0);
  await rooms.getByRole('link', { name: /^#general/ }).click();
  await expect(a.page.locator('.current-room')).toHaveText('#general');
  await expect(rooms).toBeHidden();
  await a.leave();
});

test('on a phone the header keeps to two rows, and a panel opens just below its button', async ({ browser }) => {
  // The longest room name there is, to wrap the title.
  const a = await Person.join(browser, undefined, `/r/${'long-'.repeat(5)}${stamp}`.slice(0, 35), phone);
  const bounds = async (name: string, role: 'button' | 'switch' | 'textbox' = 'button') =>
    (await a.page.getByRole(role, { name, exact: true }).boundingBox())!;
  const middle = (b: { y: number; height: number }) => b.y + b.height / 2;
  const rooms = await bounds('Rooms');
  expect(middle(await bounds('People'))).toBeCloseTo(middle(rooms), 0);
  expect(middle(await bounds('Dark theme', 'switch'))).toBeCloseTo(middle(rooms), 0);
  expect(middle(await bounds('Set nickname'))).toBeCloseTo(middle(await bounds('Nickname', 'textbox')), 0);

  const panels = [
    ['Rooms', a.page.getByRole('navigation', { name: 'Rooms' })],
    ['People', a.online],
  ] as const;
  for (const [name, panel] of panels) {
    await a.page.getByRole('button', { name }).click();
    await expect(panel).toBeVisible();
    const opened = (await panel.boundingBox())!;
    const button = await bounds(name);
    expect(opened.y).toBeGreaterThanOrEqual(button.y + button.height);
    expect(opened.y).toBeLessThan(button.y + button.height + 16);
    await a.page.keyboard.press('Escape');
    await expect(panel).toBeHidden();
  }
  await a.leave();
});

test('on a desktop the rooms and the people are always shown, without toggles', async ({ browser }) => {
  const a = await Person.join(browser, undefined, room('desk'), { viewport: { width: 1280, height: 800 } });
  await expect(a.page.getByRole('navigation', { name: 'Rooms' })).toBeVisible();
  await expect(a.online).toBeVisible();
  await expect(a.page.getByRole('button', { name: 'Rooms' })).toBeHidden();
  await expect(a.page.getByRole('button', { name: 'People' })).toBeHidden();
  await a.leave();
});

test('nothing on the page shifts while it loads, hydrates and pages in history', async ({ browser }) => {
  const writer = await Person.join(browser, undefined, room('still'));
  await writer.sayEach(Array.from({ length: 60 }, (_, i) => `history ${i}`));
  const context = await browser.newContext();
  // Each shift, with what moved, for the failure message.
  await context.addInitScript(() => {
    (window as any).shifts = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries() as any[]) {
        const moved = entry.sources.map((s: any) => {
          const node = s.node as Element | null;
          return `${node?.className || node?.nodeName} "${node?.textContent?.slice(0, 30)}"`;
        });
        (window as any).shifts.push(`${entry.value.toFixed(5)}: ${moved.join(', ')}`);
      }
    }).observe({ type: 'layout-shift', buffered: true });
  });
  const page = await context.newPage();
  await page.goto(room('still'));
  await expect(page.locator('main[data-connection="online"]')).toBeVisible();
  const list = page.getByRole('list', { name: 'Messages' });
  await expect(list.locator('li.message')).toHaveCount(50);
  expect(await page.evaluate(() => (window as any).shifts)).toEqual([]);

  // Older messages come in above without moving the ones in view. (The
  // list redraws its lines in place, so the browser's layout-shift count
  // sees its nodes move even when no line does: the test follows a line.)
  const line = list.locator('.says', { hasText: /^Anonymous: history 10$/ });
  await list.evaluate((el) => (el.scrollTop = 0));
  const before = await line.evaluate((el) => el.getBoundingClientRect().top);
  await expect(list.locator('li.message')).toHaveCount(60);
  await expect.poll(() => line.evaluate((el) => el.getBoundingClientRect().top)).toBeCloseTo(before, 0);
  await context.close();
  await writer.leave();
});
