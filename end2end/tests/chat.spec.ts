import { test, expect } from '@playwright/test';
import { Person } from './chat';

test('the page shows the nickname form, the message box, the status and an empty list', async ({
  browser,
}) => {
  const a = await Person.join(browser);
  const { page } = a;

  await expect(page.getByLabel('Nickname', { exact: true })).toBeVisible();
  await expect(page.getByLabel('Message', { exact: true })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Set nickname' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Send' })).toBeEnabled();
  await expect(a.status).toHaveText('Online');
  await expect(page.getByTestId('current-nickname')).toHaveText('Anonymous');
  await expect(page.getByRole('list', { name: 'Messages' })).toBeVisible();
  await expect(a.messages).toHaveCount(0);
  await expect(a.onlinePeople.filter({ hasText: '(you)' })).toHaveText('Anonymous (you)');
  await a.leave();
});

test('two people chat: the sender sees its message at once, the other in real time', async ({
  browser,
}) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);

  await a.setNickname('alice');
  await a.say('hello');

  const own = a.messages.filter({ hasText: 'hello' });
  await expect(own.locator('.says')).toHaveText('alice: hello');
  await expect(own).toHaveClass(/\bmine\b/);
  await expect(a.page.getByLabel('Message', { exact: true })).toHaveValue('');

  const received = b.messages.filter({ hasText: 'hello' });
  await expect(received.locator('.says')).toHaveText('alice: hello');
  await expect(received).not.toHaveClass(/\bmine\b/);

  // b answers; once a has the answer, any echo of "hello" would have come
  // before it: a must still show "hello" exactly once.
  await b.setNickname('bob');
  await b.say('hi alice');
  await expect(a.said.last()).toHaveText('bob: hi alice');
  await expect(a.said).toHaveText(['alice: hello', 'bob: hi alice']);
  await expect(b.said).toHaveText(['alice: hello', 'bob: hi alice']);

  await a.leave();
  await b.leave();
});

test('a person who never picks a nickname is Anonymous', async ({ browser }) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);

  await a.say('who am I?');
  await expect(b.said).toHaveText(['Anonymous: who am I?']);
  await expect(a.said).toHaveText(['Anonymous: who am I?']);

  await a.leave();
  await b.leave();
});

test('a nickname change shows in the next message the other person gets', async ({ browser }) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);

  await a.say('before');
  await a.setNickname('  carol  ');
  await a.say('after');

  await expect(b.said).toHaveText(['Anonymous: before', 'carol: after']);
  await expect(a.said).toHaveText(['Anonymous: before', 'carol: after']);

  await a.leave();
  await b.leave();
});

test('blank messages are not sent and an invalid nickname is refused', async ({ browser }) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);

  await a.say('   ');
  await a.page.getByLabel('Nickname', { exact: true }).fill('   ');
  await a.page.getByLabel('Nickname', { exact: true }).press('Enter');
  await expect(a.page.getByRole('alert')).toContainText('nickname must not be blank');
  await expect(a.page.getByTestId('current-nickname')).toHaveText('Anonymous');

  await a.say('visible');
  await expect(b.said).toHaveText(['Anonymous: visible']);
  await expect(a.said).toHaveText(['Anonymous: visible']);

  await a.leave();
  await b.leave();
});

test('markup is shown as text, never run', async ({ browser }) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);
  const xss = '<img src=x onerror=alert(1)>';

  await a.setNickname('<b>mallory</b>');
  await a.say(xss);

  await expect(b.said).toHaveText([`<b>mallory</b>: ${xss}`]);
  await expect(a.said).toHaveText([`<b>mallory</b>: ${xss}`]);
  for (const person of [a, b]) {
    const list = person.page.getByRole('list', { name: 'Messages' });
    await expect(list.locator('img')).toHaveCount(0);
    await expect(list.locator('b')).toHaveCount(0);
    expect(person.dialogs).toEqual([]);
  }

  await a.leave();
  await b.leave();
});

test('text cannot reorder or paint over the page around it', async ({ browser }) => {
  const a = await Person.join(browser);
  const b = await Person.join(browser);
  // A right-to-left override would flip ": " and the nickname without
  // isolation; stacked marks would paint over the lines around.
  const rtl = '\u202Egnirts desrever';
  const marks = 'a\u0301\u0300\u0302\u0303';

  await a.say(rtl);
  await a.say(marks);
  await expect(b.said).toHaveText([`Anonymous: ${rtl}`, `Anonymous: ${marks}`]);
  for (const person of [a, b]) {
    const line = person.messages.first();
    await expect(line.locator('bdi.nickname')).toHaveCSS('unicode-bidi', 'isolate');
    await expect(line.locator('bdi.text')).toHaveCSS('unicode-bidi', 'isolate');
    await expect(line).toHaveCSS('overflow-y', /clip|hidden/);
  }

  await a.leave();
  await b.leave();
});
