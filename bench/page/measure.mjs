#!/usr/bin/env node
// The page benchmark (issue 16, item 7): one server's chat page in Debian's
// Chromium, driven through the DevTools protocol (CDP) by Playwright.
//
//   node bench/page/measure.mjs --url http://127.0.0.1:3000/ --server parley
//   node bench/page/measure.mjs --url http://127.0.0.1:3200/ --server node
//
// It prints one JSON object on stdout (progress goes to stderr); `compare
// --only page` starts a fresh server per run, runs this, and turns the JSON
// into its report. Two parts:
//
// 1. Cold load. The room first gets `--stored` messages from a WebSocket
//    client (Parley stores them and renders them into the page; the Node
//    peer stores nothing). Then `/` is loaded in a new browser context (no
//    cache) on a slow phone profile: 150 ms round trip, 1.6 Mbit/s down,
//    750 kbit/s up, CPU slowed 4x, 390 px wide. Reported, in ms from the
//    start of the navigation:
//    - first contentful paint (Paint Timing);
//    - messages painted: when the newest stored message is in the list, the
//      first paint that shows it: first contentful paint if it was already
//      in the DOM then (server rendering), otherwise the end of the first
//      frame after it was inserted (requestAnimationFrame, then a task);
//    - connected: when Send works. Parley: `main[data-connection="online"]`
//      is in the DOM (online only once hydrated and welcomed by the server).
//      The Node peer's page marks nothing; its Send works as soon as its
//      socket is open, so for it this is the first WebSocket's `open` event
//      (seen by a listener the probe adds to every WebSocket);
//    - bytes transferred: every HTTP response's encodedDataLength (headers
//      and body as sent over the wire) up to the load event and connection.
// 2. Main-thread time per incoming message, with no throttling (same 390 px
//    viewport). A second client sends messages one at a time. A watcher in
//    the page checks in each animation frame whether the list's last line
//    holds the awaited message's text; once it does, a task after that frame
//    (so the frame has painted it) tells the script through a CDP binding
//    (Runtime.addBinding: no DevTools command per message), and the script
//    sends the next. Around each batch of `--batch` messages, CDP
//    Performance.getMetrics: the deltas of TaskDuration, ScriptDuration,
//    LayoutDuration, RecalcStyleDuration and ThreadTime (the main thread's
//    CPU time) divided by the batch; then, after a forced garbage collection,
//    JSHeapUsedSize and Nodes. Batches run with `--lines` lines shown
//    (messages are sent first until the list holds that many `<li>`; then
//    the list, or the document on the Node page, is scrolled to the bottom,
//    where a reader of the live conversation is), then
//    scrolled up a screen below the top of the list with `--held` lines held.
//    The probe's own cost (waiting for a message that is already there) is
//    measured the same way and reported, not subtracted.
//
// Playwright comes from end2end/node_modules (scripts/setup.sh installs it;
// it never downloads a browser of its own), the `ws` client from the Node
// peer's node_modules when Node has no global WebSocket.

import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

// What each server's page looks like to the probe.
const PAGES = {
  parley: { list: '.messages', ready: 'main[data-connection="online"]', stores: true },
  node: { list: '#log', ready: null, stores: false },
};

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// The phone: 390 x 844 CSS px at 3 device px each, touch, mobile layout.
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };
// CDP Network.emulateNetworkConditions: ms, and bytes per second.
const SLOW_NETWORK = {
  offline: false,
  latency: 150,
  downloadThroughput: 1_600_000 / 8,
  uploadThroughput: 750_000 / 8,
};
const CPU_SLOWDOWN = 4;

const WAIT_MS = 30_000; // for any one thing the page must do
const FILL_CHUNK = 50; // messages sent at once while filling the list
const BINDING = '__pageBenchShown'; // the page tells the script a line is shown

function parseArgs(argv) {
  const args = {
    url: null,
    server: null,
    chromium: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    stored: 50,
    lines: [100, 500],
    held: 2000,
    batch: 100,
    list: null,
    ready: null,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      i += 1;
      return argv[i];
    };
    const count = () => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: not a count`);
      return n;
    };
    switch (flag) {
      case '--url': args.url = value(); break;
      case '--server': args.server = value(); break;
      case '--chromium': args.chromium = value(); break;
      case '--stored': args.stored = count(); break;
      case '--lines': args.lines = value().split(',').filter(Boolean).map(Number); break;
      case '--held': args.held = count(); break;
      case '--batch': args.batch = count(); break;
      case '--list': args.list = value(); break;
      case '--ready': args.ready = value(); break;
      case '--help':
        process.stderr.write('usage: measure.mjs --url URL --server parley|node [--chromium PATH] ' +
          '[--stored 50] [--lines 100,500] [--held 2000] [--batch 100] [--list SEL] [--ready SEL]\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!args.url) throw new Error('--url is required');
  if (!PAGES[args.server]) throw new Error('--server must be parley or node');
  if (args.batch < 1) throw new Error('--batch must be at least 1');
  if (args.lines.some((n) => !Number.isInteger(n) || n < 0)) throw new Error('--lines: counts');
  const page = PAGES[args.server];
  args.page = {
    list: args.list ?? page.list,
    ready: args.ready ?? page.ready,
    stores: page.stores,
  };
  return args;
}

const log = (...parts) => process.stderr.write(`page: ${parts.join(' ')}\n`);

function loadWebSocket() {
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  const require = createRequire(path.join(repo, 'bench/peers/node-ws/package.json'));
  return require('ws');
}

function loadPlaywright() {
  const require = createRequire(path.join(repo, 'end2end/package.json'));
  try {
    return require('playwright-core');
  } catch {
    return require('@playwright/test');
  }
}

function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A WebSocket client speaking wire protocol v1 to either server.
class Sender {
  static async open(url, WebSocketImpl) {
    const ws = new WebSocketImpl(url);
    const sender = new Sender(ws);
    await withTimeout(new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`could not open ${url}`));
    }), `opening ${url}`);
    ws.onerror = null;
    return sender;
  }

  constructor(ws) {
    this.ws = ws;
    this.acks = 0;
    this.onAck = null;
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (frame.type === 'ack') {
        this.acks += 1;
        this.onAck?.();
      } else if (frame.type === 'error') {
        log(`the server refused a frame: ${JSON.stringify(frame.payload)}`);
      }
    };
  }

  send(type, payload) {
    this.ws.send(JSON.stringify({ type, payload }));
  }

  // Sends tracked messages (Parley acks each once stored) and waits for
  // every ack.
  async store(texts) {
    const target = this.acks + texts.length;
    const done = new Promise((resolve) => {
      this.onAck = () => this.acks >= target && resolve();
    });
    texts.forEach((text, i) => this.send('message', { text, client_id: `stored-${i}` }));
    await withTimeout(done, `acks for ${texts.length} stored messages`);
    this.onAck = null;
  }

  close() {
    this.ws.close();
  }
}

// Runs in the page before any of its own scripts (Page.addScriptToEvaluateOnNewDocument):
// timestamps for the cold load, and nothing more once they are all taken.
function probe(config) {
  const marks = {};
  const state = { marks, config };
  window.__pageBench = state;
  let settle;
  state.settled = new Promise((resolve) => { settle = resolve; });
  const done = () => marks.ready !== undefined
    && (config.lastText === null || marks.messagesPainted !== undefined);
  const check = () => {
    if (done()) {
      observer.disconnect();
      settle();
    }
  };

  new PerformanceObserver((entries) => {
    for (const entry of entries.getEntries()) {
      if (entry.name === 'first-contentful-paint') marks.fcp = entry.startTime;
    }
  }).observe({ type: 'paint', buffered: true });

  const Native = window.WebSocket;
  window.WebSocket = new Proxy(Native, {
    construct(target, args, newTarget) {
      const socket = Reflect.construct(target, args, newTarget);
      socket.addEventListener('open', () => {
        if (marks.socketOpen === undefined) {
          marks.socketOpen = performance.now();
          if (config.ready === null) {
            marks.ready = marks.socketOpen;
            check();
          }
        }
      });
      return socket;
    },
  });

  const observer = new MutationObserver(() => {
    const now = performance.now();
    if (marks.ready === undefined && config.ready !== null && document.querySelector(config.ready)) {
      marks.ready = now;
    }
    if (marks.messagesInDom === undefined && config.lastText !== null) {
      const list = document.querySelector(config.list);
      if (list && list.textContent.includes(config.lastText)) {
        marks.messagesInDom = now;
        requestAnimationFrame(() => setTimeout(() => {
          marks.messagesPainted = performance.now();
          check();
        }, 0));
      }
    }
    check();
  });
  observer.observe(document, {
    subtree: true,
    childList: true,
    characterData: true,
    attributes: config.ready !== null,
    attributeFilter: config.ready !== null ? ['data-connection', 'class'] : undefined,
  });
}

// Resolves once the list's last line holds `token` and a frame has painted
// it: checked in each animation frame, resolved by a task after that frame.
// For filling the list, not measured.
function waitRendered({ list, token }) {
  const element = document.querySelector(list);
  return new Promise((resolve) => {
    const check = () => {
      const last = element.lastElementChild;
      if (last && last.textContent.includes(token)) setTimeout(resolve, 0);
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
}

// The measured wait, installed once per batch so that each message costs no
// DevTools command: for each token in turn, checks in every animation frame
// whether the list's last line holds it; once it does, a task after that
// frame (the frame has painted it) calls the CDP binding with its index, and
// the watch moves on to the next token.
function watch({ list, tokens, binding }) {
  const element = document.querySelector(list);
  let index = 0;
  const check = () => {
    const last = element.lastElementChild;
    if (last && last.textContent.includes(tokens[index])) {
      setTimeout(() => {
        window[binding](String(index));
        index += 1;
        if (index < tokens.length) requestAnimationFrame(check);
      }, 0);
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
}

function lineCount(list) {
  return document.querySelector(list).querySelectorAll(':scope > li').length;
}

// Scrolls whatever scrolls the list (the list itself on Parley, the document
// on the Node page) to one screen below its top: away from the bottom, but
// not at the very top, where Parley pages in older history.
function scrollUp(list) {
  const element = document.querySelector(list);
  const style = getComputedStyle(element);
  const own = /(auto|scroll)/.test(style.overflowY) && element.scrollHeight > element.clientHeight;
  const scroller = own ? element : document.scrollingElement;
  scroller.scrollTop = Math.max(1, Math.min(scroller.clientHeight, scroller.scrollHeight / 4));
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
}

// Scrolls whatever scrolls the list to its bottom, where a reader of the
// live conversation is (filling the list in chunks can leave Parley's
// scrolled up a little, and then it stops following).
function scrollDown(list) {
  const element = document.querySelector(list);
  const style = getComputedStyle(element);
  const own = /(auto|scroll)/.test(style.overflowY) && element.scrollHeight > element.clientHeight;
  const scroller = own ? element : document.scrollingElement;
  scroller.scrollTop = scroller.scrollHeight;
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
}

function scrollState(list) {
  const element = document.querySelector(list);
  const style = getComputedStyle(element);
  const own = /(auto|scroll)/.test(style.overflowY) && element.scrollHeight > element.clientHeight;
  const scroller = own ? element : document.scrollingElement;
  return {
    scroller: own ? 'list' : 'document',
    scroll_top: scroller.scrollTop,
    from_bottom: scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight,
  };
}

async function metrics(cdp) {
  const { metrics: list } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(list.map(({ name, value }) => [name, value]));
}

async function coldLoad(browser, args, nonce) {
  const lastText = args.page.stores && args.stored > 0
    ? `stored ${String(args.stored).padStart(5, '0')} ${nonce}`
    : null;
  const context = await browser.newContext(PHONE);
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    const requests = new Map();
    cdp.on('Network.responseReceived', ({ requestId, response }) => {
      requests.set(requestId, { url: response.url, status: response.status, bytes: null });
    });
    cdp.on('Network.loadingFinished', ({ requestId, encodedDataLength }) => {
      const request = requests.get(requestId) ?? { url: '?', status: null };
      requests.set(requestId, { ...request, bytes: encodedDataLength });
    });
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    await cdp.send('Network.emulateNetworkConditions', SLOW_NETWORK);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
    await page.addInitScript(probe, { list: args.page.list, ready: args.page.ready, lastText });

    await page.goto(args.url, { waitUntil: 'load', timeout: WAIT_MS });
    await withTimeout(page.evaluate(() => window.__pageBench.settled), 'the cold page to connect');
    const marks = await page.evaluate(() => window.__pageBench.marks);
    const timing = await page.evaluate(() => {
      const [nav] = performance.getEntriesByType('navigation');
      return nav ? { dom_content_loaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd } : {};
    });
    const lines = await page.evaluate(lineCount, args.page.list);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    const finished = [...requests.values()].filter((r) => r.bytes !== null);
    const messagesPainted = marks.messagesInDom === undefined
      ? null
      : (marks.fcp !== undefined && marks.messagesInDom <= marks.fcp ? marks.fcp : marks.messagesPainted);
    return {
      ready_signal: args.page.ready ?? 'WebSocket open',
      fcp_ms: marks.fcp ?? null,
      messages_in_dom_ms: marks.messagesInDom ?? null,
      messages_painted_ms: messagesPainted,
      socket_open_ms: marks.socketOpen ?? null,
      connected_ms: marks.ready ?? null,
      dom_content_loaded_ms: timing.dom_content_loaded ?? null,
      load_ms: timing.load ?? null,
      lines_shown: lines,
      transferred_bytes: finished.reduce((sum, r) => sum + r.bytes, 0),
      requests: finished,
    };
  } finally {
    await context.close();
  }
}

async function messageCost(browser, args, sender, nonce) {
  const context = await browser.newContext(PHONE);
  let seq = 0;
  let lastToken = null;
  const list = args.page.list;
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await page.addInitScript(probe, { list, ready: args.page.ready, lastText: null });
    await page.goto(args.url, { waitUntil: 'load', timeout: WAIT_MS });
    await withTimeout(page.evaluate(() => window.__pageBench.settled), 'the page to connect');
    await cdp.send('Performance.enable');

    const lines = () => page.evaluate(lineCount, list);
    const token = (n) => `live ${String(n).padStart(6, '0')} ${nonce}`;
    const sendOne = () => {
      seq += 1;
      lastToken = token(seq);
      sender.send('message', lastToken);
      return lastToken;
    };
    const rendered = (token) => withTimeout(
      page.evaluate(waitRendered, { list, token }),
      `message "${token}" to be shown`,
    );
    // Sends chunks of messages until the list holds `target` lines, or
    // stops growing (a page that trims its list).
    const fill = async (target) => {
      let count = await lines();
      while (count < target) {
        const n = Math.min(FILL_CHUNK, target - count);
        let token;
        for (let i = 0; i < n; i += 1) token = sendOne();
        await rendered(token);
        const next = await lines();
        if (next <= count) break;
        count = next;
      }
      return count;
    };
    // Resolvers of the binding's calls, by index.
    const shown = new Map();
    cdp.on('Runtime.bindingCalled', ({ name, payload }) => {
      if (name !== BINDING) return;
      shown.get(Number(payload))?.();
    });
    await cdp.send('Runtime.addBinding', { name: BINDING });
    // `tokens` are the lines to wait for in turn; `send` sends the i-th
    // message (or nothing, for the probe alone).
    const watched = async (tokens, send) => {
      const waits = tokens.map((_, i) => new Promise((resolve) => shown.set(i, resolve)));
      await page.evaluate(watch, { list, tokens, binding: BINDING });
      for (let i = 0; i < tokens.length; i += 1) {
        send(i);
        await withTimeout(waits[i], `line "${tokens[i]}" to be shown`);
      }
      shown.clear();
    };
    const measure = async (label, tokens, send) => {
      const linesBefore = await lines();
      const scrollBefore = await page.evaluate(scrollState, list);
      const before = await metrics(cdp);
      await watched(tokens, send);
      const after = await metrics(cdp);
      await cdp.send('HeapProfiler.collectGarbage');
      const memory = await metrics(cdp);
      const per = (name) => ((after[name] - before[name]) * 1000) / args.batch;
      return {
        label,
        lines_before: linesBefore,
        lines_after: await lines(),
        scroll_before: scrollBefore,
        scroll_after: await page.evaluate(scrollState, list),
        messages: args.batch,
        task_ms: per('TaskDuration'),
        script_ms: per('ScriptDuration'),
        layout_ms: per('LayoutDuration'),
        style_ms: per('RecalcStyleDuration'),
        devtools_ms: per('DevToolsCommandDuration'),
        thread_cpu_ms: per('ThreadTime'),
        js_heap_used_bytes: memory.JSHeapUsedSize,
        nodes: memory.Nodes,
        wall_ms: (after.Timestamp - before.Timestamp) * 1000,
      };
    };
    // The next `args.batch` messages: their texts, and a sender for each.
    const incoming = () => {
      const tokens = Array.from({ length: args.batch }, (_, i) => token(seq + 1 + i));
      return [tokens, (i) => { seq += 1; lastToken = tokens[i]; sender.send('message', tokens[i]); }];
    };

    const batches = [];
    for (const target of args.lines) {
      const shown = await fill(target);
      await page.evaluate(scrollDown, list);
      log(`${args.server}: ${shown} lines shown, measuring ${args.batch} messages`);
      batches.push(await measure(`${target} lines shown`, ...incoming()));
    }
    let probeCost = null;
    if (args.held > 0) {
      await page.evaluate(scrollUp, list);
      const held = await fill(args.held);
      log(`${args.server}: ${held} lines held scrolled up, measuring ${args.batch} messages`);
      batches.push({ ...(await measure(`${args.held} held, scrolled up`, ...incoming())), scrolled_up: true });
    }
    // The probe alone: the same watch for a line that is already shown.
    if (lastToken !== null) {
      probeCost = await measure('probe alone', Array(args.batch).fill(lastToken), () => {});
    }
    return { batches, probe: probeCost };
  } finally {
    await context.close();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const WebSocketImpl = loadWebSocket();
  const { chromium } = loadPlaywright();
  const wsUrl = new URL('/ws', args.url).href.replace(/^http/, 'ws');
  const nonce = randomBytes(4).toString('hex');

  if (args.stored > 0) {
    const texts = Array.from({ length: args.stored },
      (_, i) => `stored ${String(i + 1).padStart(5, '0')} ${nonce}`);
    const storer = await Sender.open(wsUrl, WebSocketImpl);
    storer.send('nickname', 'storer');
    if (args.page.stores) await storer.store(texts);
    else texts.forEach((text) => storer.send('message', text));
    storer.close();
  }

  const browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    log(`${args.server}: cold load on the phone profile`);
    const load = await coldLoad(browser, args, nonce);
    const sender = await Sender.open(wsUrl, WebSocketImpl);
    sender.send('nickname', 'sender');
    let cost;
    try {
      cost = await messageCost(browser, args, sender, nonce);
    } finally {
      sender.close();
    }
    const report = {
      server: args.server,
      url: args.url,
      chromium: browser.version(),
      profile: {
        viewport: PHONE.viewport,
        device_scale_factor: PHONE.deviceScaleFactor,
        latency_ms: SLOW_NETWORK.latency,
        down_bits_per_sec: SLOW_NETWORK.downloadThroughput * 8,
        up_bits_per_sec: SLOW_NETWORK.uploadThroughput * 8,
        cpu_slowdown: CPU_SLOWDOWN,
      },
      stored: args.page.stores ? args.stored : 0,
      load,
      messages: cost.batches,
      probe: cost.probe,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`page: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
