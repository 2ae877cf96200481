import { Browser, BrowserContext, BrowserContextOptions, Page, expect } from '@playwright/test';

/** One person in the chat: a browser context of their own, with one page. */
export class Person {
  readonly errors: string[] = [];
  readonly dialogs: string[] = [];
  /** Lines in the list when the page was opened: earlier tests' history. */
  private shown = 0;

  private constructor(readonly context: BrowserContext, readonly page: Page) {
    page.on('pageerror', (err) => this.errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') this.errors.push(msg.text());
    });
    page.on('dialog', async (dialog) => {
      this.dialogs.push(dialog.message());
      await dialog.dismiss();
    });
  }

  /** Opens the chat (at `path`: `/r/<name>` for a room other than
   *  general) and waits until it is hydrated and connected; `options` set
   *  up the browser context (viewport, colour scheme...). */
  static async join(
    browser: Browser,
    baseURL?: string,
    path = '/',
    options: BrowserContextOptions = {},
  ): Promise<Person> {
    const context = await browser.newContext({ ...options, ...(baseURL ? { baseURL } : {}) });
    const page = await context.newPage();
    const person = new Person(context, page);
    await page.goto(path);
    await person.waitOnline();
    await person.skipHistory();
    return person;
  }

  /** From now on, `messages` and `said` leave out the lines shown so far. */
  async skipHistory() {
    this.shown = await this.list.locator('li').count();
  }

  get list() {
    return this.page.getByRole('list', { name: 'Messages' });
  }

  /** Every chat message shown, history included. */
  get allMessages() {
    return this.list.locator('li.message');
  }

  async waitOnline() {
    // data-connection can only read "online" once the WASM has hydrated the
    // page and its socket is open.
    await expect(this.page.locator('main[data-connection="online"]')).toBeVisible();
  }

  /** Chat messages (not system lines), own and others', after those shown
   *  when the page was opened (the list's first item is the history line). */
  get messages() {
    return this.list.locator(`li.message:nth-child(n+${this.shown + 1})`);
  }

  /** What each message says, `nickname: text`, without its time or state. */
  get said() {
    return this.messages.locator('.says');
  }

  /** Joins, leaves and renames. */
  get systemLines() {
    return this.page.getByRole('list', { name: 'Messages' }).locator('li.system');
  }

  get online() {
    return this.page.getByRole('region', { name: 'Online' });
  }

  get onlinePeople() {
    return this.online.getByRole('listitem');
  }

  get typing() {
    return this.page.getByTestId('typing');
  }

  /** Drops expected errors (matching `pattern`) from those `leave` checks. */
  forgive(pattern: RegExp) {
    const kept = this.errors.filter((error) => !pattern.test(error));
    this.errors.splice(0, this.errors.length, ...kept);
  }

  get status() {
    return this.page.getByRole('status');
  }

  async setNickname(nickname: string) {
    await this.page.getByLabel('Nickname', { exact: true }).fill(nickname);
    await this.page.getByLabel('Nickname', { exact: true }).press('Enter');
    await expect(this.page.getByTestId('current-nickname')).toHaveText(nickname.trim());
  }

  async say(text: string) {
    await this.page.getByLabel('Message', { exact: true }).fill(text);
    await this.page.getByLabel('Message', { exact: true }).press('Enter');
  }

  /** Says each text in turn, as a patient person would: waits until each
   *  is sent, and presses Retry on one the server refused as too fast (a
   *  burst of 20 frames, then 10 a second), so all of them are stored, in
   *  order. */
  async sayEach(texts: string[]) {
    for (const text of texts) {
      await this.say(text);
      const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const exact = new RegExp(`^${escaped}$`);
      const line = this.messages.filter({ has: this.page.locator('.text', { hasText: exact }) }).last();
      await expect(async () => {
        if ((await line.getAttribute('data-state')) === 'failed') {
          await line.getByRole('button', { name: 'Retry' }).click();
        }
        await expect(line).toHaveAttribute('data-state', 'sent', { timeout: 1_000 });
      }).toPass();
    }
  }

  async leave() {
    expect(this.errors, 'no errors in the page').toEqual([]);
    await this.context.close();
  }
}
