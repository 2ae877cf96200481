import { test, expect } from '@playwright/test';
import { Person } from './chat';

test('an own message is pending until the server acknowledges it, then sent', async ({
  browser,
}) => {
  const a = await Person.join(browser);

  // Record every data-state an own message shows, from its insertion on.
  // Each WebSocket frame arrives in a task of its own, and observers run
  // before the next task: the ack cannot hide the pending state from this.
  await a.page.evaluate(() => {
    const states: string[] = [];
    (window as unknown as { ownStates: string[] }).ownStates = states;
    const list = document.querySelector('ul.messages')!;
    new MutationObserver((records) => {
      for (const record of records) {
        const nodes =
          record.type === 'childList' ? [...record.addedNodes] : [record.target];
        for (const node of nodes) {
          if (node instanceof HTMLElement && node.matches('li.mine')) {
            states.push(node.dataset.state ?? '');
          }
        }
      }
    }).observe(list, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ['data-state'],
    });
  });

  await a.say('trust me');
  const own = a.messages.filter({ hasText: 'trust me' });
  await expect(own).toHaveAttribute('data-state', 'sent');
  await expect(own.locator('time')).toHaveAttribute(
    'datetime',
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$/,
  );
  await expect(own.locator('time')).toHaveText(/\d/);
  const states = await a.page.evaluate(
    () => (window as unknown as { ownStates: string[] }).ownStates,
  );
  expect(states[0]).toBe('pending');
  expect(states.at(-1)).toBe('sent');
  expect(states).not.toContain('failed');

  await a.leave();
});

test("others' messages show their time, in the reader's time zone", async ({ browser }) => {
  const a = await Person.join(browser);
  const context = await browser.newContext({ timezoneId: 'Asia/Kathmandu', locale: 'en-GB' });
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.locator('main[data-connection="online"]')).toBeVisible();

  // Unique, so the general room's history from earlier runs cannot match.
  const question = `what time is it? (${Date.now()})`;
  await a.say(question);
  const received = page.locator('li.message', { hasText: question });
  const time = received.locator('time');
  const datetime = await time.getAttribute('datetime');
  expect(datetime).not.toBeNull();
  // Kathmandu is UTC+05:45: the minutes shown differ from UTC's.
  const utc = new Date(datetime!);
  const local = new Date(utc.getTime() + (5 * 60 + 45) * 60_000);
  const hhmm = (d: Date) =>
    `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
  await expect(time).toHaveText(hhmm(local));

  await context.close();
  await a.leave();
});

test('the online list follows people coming and going', async ({ browser }) => {
  const a = await Person.join(browser);
  await a.setNickname('alice');
  await expect(a.onlinePeople.filter({ hasText: 'alice' })).toHaveText('alice (you)');

  const b = await Person.join(browser);
  await b.setNickname('bob');
  await expect(a.onlinePeople.filter({ hasText: 'bob' })).toHaveText('bob');
  await expect(b.onlinePeople.filter({ hasText: 'bob' })).toHaveText('bob (you)');
  await expect(b.onlinePeople.filter({ hasText: 'alice' })).toHaveText('alice');

  const count = await a.online.getByRole('heading').textContent();
  const online = Number(/^(\d+) online$/.exec(count ?? '')?.[1]);
  expect(online).toBeGreaterThanOrEqual(2);
  await expect(b.online.getByRole('heading')).toHaveText(`${online} online`);

  await b.leave();
  await expect(a.onlinePeople.filter({ hasText: 'bob' })).toHaveCount(0);
  await expect(a.online.getByRole('heading')).toHaveText(`${online - 1} online`);
  await expect(a.systemLines.last()).toHaveText('bob left');
  await a.leave();
});

test('joins, renames and leaves are quiet system lines, never for joining oneself', async ({
  browser,
}) => {
  const a = await Person.join(browser);
  await a.setNickname('alice');
  await expect(a.onlinePeople.filter({ hasText: 'alice' })).toHaveText('alice (you)');

  const line = (person: Person, text: string) =>
    person.systemLines.filter({ hasText: new RegExp(`^${text}$`) });
  const b = await Person.join(browser);
  await expect(line(a, 'Anonymous joined')).toHaveCount(1);
  // Renamed only after the join went out, so the two are not folded into one.
  await b.setNickname('bea');
  await expect(line(a, 'Anonymous is now bea')).toHaveCount(1);
  await expect(line(b, 'Anonymous is now bea')).toHaveCount(1);
  await expect(b.systemLines.filter({ hasText: 'joined' })).toHaveCount(0);

  await b.leave();
  await expect(line(a, 'bea left')).toHaveCount(1);
  await expect(a.systemLines).toContainText([
    'Anonymous joined',
    'Anonymous is now bea',
    'bea left',
  ]);
  await a.leave();
});

test('a nickname someone else uses is refused, whatever its case', async ({ browser }) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);
  await a.setNickname('Alice');
  await expect(a.onlinePeople.filter({ hasText: 'Alice' })).toHaveText('Alice (you)');

  // Back to the last confirmed nickname, with the reason.
  await b.page.getByLabel('Nickname', { exact: true }).fill('ALICE');
  await b.page.getByLabel('Nickname', { exact: true }).press('Enter');
  await expect(b.page.getByTestId('current-nickname')).toHaveText('Anonymous');
  await expect(b.page.getByRole('alert')).not.toHaveText('');
  await expect(b.onlinePeople.filter({ hasText: '(you)' })).toHaveText('Anonymous (you)');

  await b.say('still me');
  await expect(a.said.last()).toHaveText('Anonymous: still me');
  await a.leave();
  await b.leave();
});

test('others see who is typing until they send, stop or clear their draft', async ({
  browser,
}) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);
  const c = await Person.join(browser);
  await b.setNickname('bob');
  await c.setNickname('carol');
  const draft = (person: Person) => person.page.getByLabel('Message', { exact: true });

  await draft(b).fill('hel');
  await expect(a.typing).toHaveText('bob is typing…');
  await expect(c.typing).toHaveText('bob is typing…');
  await expect(b.typing).toHaveText('');

  await draft(c).fill('wai');
  await expect(a.typing).toHaveText('bob and carol are typing…');

  // bob empties his draft without sending: cleared at once.
  await draft(b).fill('');
  await expect(a.typing).toHaveText('carol is typing…');

  // carol sends: her message clears her.
  await draft(c).fill('wait for me');
  await draft(c).press('Enter');
  await expect(a.said.last()).toHaveText('carol: wait for me');
  await expect(a.typing).toHaveText('');

  await a.leave();
  await b.leave();
  await c.leave();
});

test('a message the server refuses is marked failed and sent again with Retry', async ({
  browser,
}) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);

  // Forty messages in one go, far beyond the burst the server accepts:
  // the rest are refused as too fast.
  await a.page.evaluate(() => {
    const input = document.querySelector<HTMLInputElement>('#message-input')!;
    for (let i = 0; i < 40; i++) {
      input.value = `burst ${i}`;
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.form!.requestSubmit();
    }
  });
  const failed = a.messages.and(a.page.locator('[data-state="failed"]'));
  await expect(failed.first()).toBeVisible();
  const text = await failed.first().locator('.text').textContent();
  const own = a.messages.filter({ has: a.page.locator('.text', { hasText: new RegExp(`^${text}$`) }) });

  // Retry until the server has room again; each retry reuses the id.
  await expect(async () => {
    if ((await own.getAttribute('data-state')) === 'failed') {
      await own.getByRole('button', { name: 'Retry' }).click();
    }
    await expect(own).toHaveAttribute('data-state', 'sent', { timeout: 1_000 });
  }).toPass();

  const relayed = b.said.filter({ hasText: new RegExp(`^Anonymous: ${text}$`) });
  await expect(relayed).toHaveCount(1);
  await a.leave();
  await b.leave();
});
