import { test, expect, Browser, Locator } from '@playwright/test';
import { Person } from './chat';

// Reading the conversation: following new messages, unread ones, groups,
// colours, links, times. A room of each test's own keeps its lines apart.
const stamp = Date.now().toString(36);
const room = (label: string) => `/r/${label}-${stamp}`;

/** How far the list is from showing its last line, in pixels. */
const fromBottom = (list: Locator) =>
  list.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);

/**
 * Scrolls the list to `top` and waits until the page has handled the
 * scroll: the event fires asynchronously, and a message that arrives before
 * it would still find the reader at the bottom.
 */
const scrollTo = (list: Locator, top: number) =>
  list.evaluate(
    (el, top) =>
      new Promise<void>((scrolled) => {
        el.addEventListener('scroll', () => requestAnimationFrame(() => scrolled()), {
          once: true,
        });
        el.scrollTop = top;
      }),
    top,
  );

/** ana and ben, in a room of their own. */
async function pair(browser: Browser, label: string): Promise<[Person, Person]> {
  const a = await Person.join(browser, undefined, room(label));
  const b = await Person.join(browser, undefined, room(label));
  await a.setNickname('ana');
  await b.setNickname('ben');
  return [a, b];
}

test('the list follows new messages at the bottom, and counts them on a button when scrolled up', async ({ browser }) => {
  const [a, b] = await pair(browser, 'follow');
  await b.sayEach(Array.from({ length: 30 }, (_, i) => `line ${i + 1}`));
  await expect(a.said.last()).toHaveText('ben: line 30');
  await expect.poll(() => fromBottom(a.list)).toBeLessThanOrEqual(2);

  // Scrolled up, new messages do not move the view; a button counts them.
  await scrollTo(a.list, 40);
  const jump = a.page.getByRole('button', { name: /new message/ });
  await expect(jump).toBeHidden();
  await b.say('while away 1');
  await b.say('while away 2');
  await expect(jump).toHaveText('2 new messages');
  expect(await a.list.evaluate((el) => el.scrollTop)).toBe(40);

  // A divider marks where the reader left off.
  const divider = a.list.locator('li[data-unread]');
  await expect(divider).toHaveCount(1);
  await expect(divider.locator('.says')).toHaveText('ben: while away 1');
  expect(
    await divider.evaluate((el) => getComputedStyle(el, '::before').content),
  ).toBe('"New messages"');

  // The button takes the reader down; the divider stays where it was.
  await jump.click();
  await expect(jump).toBeHidden();
  await expect.poll(() => fromBottom(a.list)).toBeLessThanOrEqual(2);
  await expect(divider.locator('.says')).toHaveText('ben: while away 1');

  // At the bottom again, the list follows; an own message always does.
  await b.say('back at the bottom');
  await expect(a.said.last()).toHaveText('ben: back at the bottom');
  await expect.poll(() => fromBottom(a.list)).toBeLessThanOrEqual(2);
  await scrollTo(a.list, 0);
  await a.say('my own');
  await expect.poll(() => fromBottom(a.list)).toBeLessThanOrEqual(2);
  await a.leave();
  await b.leave();
});

test('new messages from others are announced politely, history is not', async ({ browser }) => {
  const [a, b] = await pair(browser, 'announce');
  await b.say('said before c came');
  const c = await Person.join(browser, undefined, room('announce'));
  const announcer = c.page.locator('.conversation [aria-live="polite"]');
  await expect(announcer).toHaveAttribute('aria-live', 'polite');
  await expect(c.allMessages).toHaveCount(1);
  await expect(announcer).toHaveText('');
  await a.say('hello c');
  await expect(announcer).toHaveText('ana: hello c');
  // The list itself is not a live region: it would be read out whole.
  await expect(c.list).not.toHaveAttribute('aria-live', /./);
  for (const person of [a, b, c]) await person.leave();
});

test('in the accessibility tree the messages are not live, and the announcer politely holds the newest one', async ({ browser }) => {
  const [a, b] = await pair(browser, 'axtree');
  const cdp = await b.context.newCDPSession(b.page);
  type Property = { name: string; value: { value: unknown } };
  /** The live-region properties Chromium gives the element at `selector`. */
  const liveness = async (selector: string) => {
    const { root } = await cdp.send('DOM.getDocument');
    const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
    const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
    const properties = (nodes[0].properties ?? []) as Property[];
    return Object.fromEntries(
      properties.filter((p) => /^(live|liveRegionRoot|busy)$/.test(p.name)).map((p) => [p.name, p.value.value]),
    );
  };
  await a.sayEach(['one', 'two', 'three']);
  await expect(b.said).toHaveText(['ana: one', 'ana: two', 'ana: three']);
  // A line is in no live region: paging in or trimming would be read out.
  expect(await liveness('.messages > li.message:last-child')).toEqual({});
  expect(await liveness('.messages')).toEqual({});
  // The announcer is, politely, and holds only the newest message.
  expect(await liveness('.conversation [aria-live]')).toMatchObject({ live: 'polite' });
  await expect(b.page.locator('.conversation [aria-live]')).toHaveText('ana: three');
  await a.leave();
  await b.leave();
});

test('one person’s messages minutes apart group under one name, each name in its own colour', async ({ browser }) => {
  const [a, b] = await pair(browser, 'group');
  const c = await Person.join(browser, undefined, room('group'));
  await c.setNickname('cleo');
  // A join or rename line between two messages would part them.
  await expect(a.systemLines.last()).toContainText('cleo');
  await b.say('first');
  await b.say('second');
  await c.say('third');
  await expect(a.said).toHaveText(['ben: first', 'ben: second', 'cleo: third']);
  const lines = a.messages;
  await expect(lines.nth(0)).not.toHaveClass(/grouped/);
  await expect(lines.nth(1)).toHaveClass(/grouped/);
  await expect(lines.nth(2)).not.toHaveClass(/grouped/);
  // A grouped line's name is for screen readers only; its time shows on hover.
  const width = (line: Locator) => line.locator('.nickname').evaluate((el) => el.getBoundingClientRect().width);
  expect(await width(lines.nth(0))).toBeGreaterThan(10);
  expect(await width(lines.nth(1))).toBeLessThanOrEqual(1);
  await expect(lines.nth(1).locator('time')).toHaveCSS('opacity', '0');
  await lines.nth(1).hover();
  await expect(lines.nth(1).locator('time')).toHaveCSS('opacity', '1');

  // One colour per name: the same on every page, another for another name.
  const colour = (line: Locator) => line.locator('.nickname').evaluate((el) => getComputedStyle(el).color);
  const ben = await colour(lines.nth(0));
  expect(await colour(b.messages.nth(0))).toBe(ben);
  expect(await colour(lines.nth(2))).not.toBe(ben);

  // Joins, leaves and renames are quieter than what people say.
  const system = a.systemLines.last();
  await expect(system).toBeVisible();
  const size = (el: Locator) => el.evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  expect(await size(system)).toBeLessThan(await size(lines.nth(0).locator('.text')));
  for (const person of [a, b, c]) await person.leave();
});

test('http and https URLs become links to a new tab; nothing else is markup', async ({ browser }) => {
  const [a, b] = await pair(browser, 'links');
  await b.say('see https://example.com/a?b=1, <b>bold</b> javascript:alert(1) and (http://x.test/y).');
  const line = a.messages.last();
  await expect(line.locator('.text')).toHaveText(
    'see https://example.com/a?b=1, <b>bold</b> javascript:alert(1) and (http://x.test/y).',
  );
  const links = line.getByRole('link');
  await expect(links).toHaveText(['https://example.com/a?b=1', 'http://x.test/y']);
  for (const [i, href] of ['https://example.com/a?b=1', 'http://x.test/y'].entries()) {
    await expect(links.nth(i)).toHaveAttribute('href', href);
    await expect(links.nth(i)).toHaveAttribute('target', '_blank');
    await expect(links.nth(i)).toHaveAttribute('rel', 'noopener noreferrer');
  }
  await expect(line.locator('b')).toHaveCount(0);
  await a.leave();
  await b.leave();
});

test('times are local, the full date shows on hover and focus, and a new day gets a separator', async ({ browser }) => {
  const timezoneId = 'Pacific/Kiritimati';
  const a = await Person.join(browser, undefined, room('times'), { timezoneId, locale: 'en-GB' });
  await a.say('what day is it?');
  const line = a.messages.last();
  await expect(line).toHaveAttribute('data-state', 'sent');
  const time = line.locator('time');
  const sentAt = (await time.getAttribute('datetime'))!;
  const expected = await a.page.evaluate((at) => {
    const date = new Date(at);
    const f = (options: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat(undefined, options).format(date);
    return {
      time: f({ hour: '2-digit', minute: '2-digit' }),
      day: f({ dateStyle: 'full' }),
    };
  }, sentAt);
  await expect(time).toHaveText(expected.time);
  const full = `${expected.day} ${expected.time}`;
  await expect(time).toHaveAttribute('title', full);
  // The first message of its day, in the reader's time zone.
  await expect(line.locator('.day')).toHaveText(expected.day);
  // Focused from the keyboard, the list shows each message's full date.
  const after = () => time.evaluate((el) => getComputedStyle(el, '::after').content);
  expect(await after()).toBe('none');
  await a.page.getByLabel('Message', { exact: true }).focus();
  await a.page.keyboard.press('Shift+Tab');
  await expect(a.list).toBeFocused();
  expect(await after()).toBe(`" · ${full}"`);
  await a.leave();
});

test('every nickname colour keeps a 4.5:1 contrast in both themes', async ({ browser }) => {
  for (const colorScheme of ['light', 'dark'] as const) {
    const context = await browser.newContext({ colorScheme });
    const page = await context.newPage();
    await page.goto(room('colours'));
    const worst = await page.evaluate(() => {
      // A colour as the screen shows it, through a canvas: sRGB bytes.
      const canvas = document.createElement('canvas').getContext('2d', { willReadFrequently: true })!;
      const rgb = (colour: string) => {
        canvas.fillStyle = colour;
        canvas.fillRect(0, 0, 1, 1);
        return [...canvas.getImageData(0, 0, 1, 1).data.slice(0, 3)];
      };
      const luminance = (colour: string) => {
        const [r, g, b] = rgb(colour).map((c) => {
          const s = c / 255;
          return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      const contrast = (a: string, b: string) => {
        const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
        return (hi + 0.05) / (lo + 0.05);
      };
      const list = document.querySelector('.messages')!;
      let worst = Infinity;
      for (const mine of [false, true]) {
        const line = document.createElement('li');
        line.className = mine ? 'message mine' : 'message';
        const name = document.createElement('bdi');
        name.className = 'nickname';
        line.append(name);
        list.append(line);
        for (let hue = 0; hue < 360; hue += 5) {
          line.style.setProperty('--hue', String(hue));
          const background = getComputedStyle(mine ? line : list).backgroundColor;
          worst = Math.min(worst, contrast(getComputedStyle(name).color, background));
        }
        line.remove();
      }
      return worst;
    });
    expect(worst, colorScheme).toBeGreaterThanOrEqual(4.5);
    await context.close();
  }
});
