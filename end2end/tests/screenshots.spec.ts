import { test, expect, Browser, BrowserContextOptions } from '@playwright/test';
import path from 'node:path';
import { Person } from './chat';

// Pictures of the main views for the README: a busy room on a desktop and
// a phone, light and dark. They land in docs/screenshots/ when
// PARLEY_SCREENSHOTS=1 (see README, "Screenshots"), and among this test's
// own results otherwise, so an ordinary run leaves the repository alone.
// Nothing is compared to them: the other specs assert on the DOM.

const desktop: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };
const phone: BrowserContextOptions = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

const conversation: [number, string][] = [
  [0, 'Morning all! Did anyone try the new release yet?'],
  [1, 'Yes, upgraded last night. The build is noticeably faster.'],
  [1, 'Release notes: https://blog.rust-lang.org/releases/'],
  [2, 'Still reading them. Anything that breaks?'],
  [0, 'Nothing on my side.\nTwo warnings, fixed in a minute.'],
  [3, 'Same here. Shall we pair on the parser after lunch?'],
  [2, 'Count me in!'],
  [0, 'Great, see you at two.'],
];

async function busyRoom(browser: Browser, room: string): Promise<Person[]> {
  const people: Person[] = [];
  for (const nickname of ['ana', 'ben', 'chloé', 'dmitri']) {
    const person = await Person.join(browser, undefined, room);
    await person.setNickname(nickname);
    people.push(person);
  }
  for (const [who, text] of conversation) await people[who].sayEach([text]);
  return people;
}

test('screenshots of the main views', async ({ browser }, testInfo) => {
  test.setTimeout(90_000);
  // The README's pictures show a room named rustaceans (made on a fresh
  // server); any other run gets a room of its own, so that a repeated or
  // retried run does not find the last one's conversation there.
  const room = process.env.PARLEY_SCREENSHOTS
    ? '/r/rustaceans'
    : `/r/rustaceans-${Date.now().toString(36)}`;
  const people = await busyRoom(browser, room);
  const dir = process.env.PARLEY_SCREENSHOTS
    ? path.resolve(__dirname, '..', '..', 'docs', 'screenshots')
    : testInfo.outputPath();
  for (const [device, options] of [
    ['desktop', desktop],
    ['phone', phone],
  ] as const) {
    for (const colorScheme of ['light', 'dark'] as const) {
      const reader = await Person.join(browser, undefined, room, { ...options, colorScheme });
      await reader.setNickname('you');
      await expect(reader.allMessages).toHaveCount(conversation.length);
      await people[3].page.getByLabel('Message', { exact: true }).fill('typing…');
      await expect(reader.typing).not.toBeEmpty();
      await reader.page.getByLabel('Message', { exact: true }).focus();
      await reader.page.screenshot({ path: path.join(dir, `${device}-${colorScheme}.png`) });
      await people[3].page.getByLabel('Message', { exact: true }).fill('');
      await reader.leave();
    }
  }
  for (const person of people) await person.leave();
});
