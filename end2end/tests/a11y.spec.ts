import { test, expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { Person } from './chat';

// axe-core's audit of the main views, in both themes, on a phone and a
// desktop: zero violations of any rule it checks (WCAG 2.2 A and AA, and
// its best practices).
const stamp = Date.now().toString(36);

const sizes = {
  phone: { width: 360, height: 740 },
  desktop: { width: 1280, height: 800 },
};

async function audit(page: Page, what: string) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const found = violations.map(
    (v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`,
  );
  expect(found, what).toEqual([]);
}

for (const [device, viewport] of Object.entries(sizes)) {
  for (const colorScheme of ['light', 'dark'] as const) {
    test(`the chat has no axe violations on a ${device} in the ${colorScheme} theme`, async ({ browser }) => {
      const path = `/r/axe-${device}-${colorScheme}-${stamp}`;
      const a = await Person.join(browser, undefined, path, { viewport, colorScheme });
      const b = await Person.join(browser, undefined, path);
      await b.setNickname('ben');
      // Every kind of line: own, someone else's, grouped, a link, a
      // system line, a failed one is covered by its own spec.
      await a.say('hello https://example.com');
      await b.say('hi there');
      await b.say('a second line, grouped');
      await expect(a.said.last()).toHaveText('ben: a second line, grouped');
      await a.page.getByLabel('Message', { exact: true }).fill('x'.repeat(1950));
      await expect(a.page.locator('#message-remaining')).toBeVisible();
      await audit(a.page, 'the chat');
      if (device === 'phone') {
        await a.page.getByRole('button', { name: 'Rooms' }).click();
        await audit(a.page, 'the rooms open');
        await a.page.keyboard.press('Escape');
        await a.page.getByRole('button', { name: 'People' }).click();
        await audit(a.page, 'the people open');
      }
      await a.leave();
      await b.leave();
    });
  }
}

test('the page for a room that cannot exist has no axe violations', async ({ page }) => {
  await page.goto('/r/Not A Room');
  await audit(page, 'the 404 page');
});
