#!/usr/bin/env node
// Drives the /phone page (src/control/phone/) in headless Chromium for
// browser tests: opens <base>/phone, logs in with an extension's
// credentials, clicks Register, then takes commands, one JSON object a line
// on stdin, and answers each with one JSON line on stdout. Page state
// changes come as event lines on stdout in between. Diagnostics (the page's
// console, errors) go to stderr.
//
//   node tests/browser/phone.mjs --base http://127.0.0.1:8080 --user 1001 \
//     --password secret1001 --wav /tmp/tone.wav [--server wss://127.0.0.1:8443]
//
// Other options: --codecs opus (opens /phone?codecs=opus: the page offers
// and answers with those codecs only), --realm DOMAIN (the SIP domain field), --raw-audio (opens
// /phone?raw-audio: no echo cancellation, noise suppression or gain
// control on the microphone, for level checks), --chromium PATH
// (default $CHROMIUM or /usr/bin/chromium), --idle-ms N (quit after N ms
// without a command; default 600000).
//
// Output lines:
//   {"event":"reg","state":"registering"}       registration state changed
//   {"event":"call","state":"ringing"}          call state changed
//   {"event":"mute","muted":true}               microphone muted / unmuted
//   {"event":"ready","server":"wss://..."}      logged in, Register clicked:
//                                               commands are taken from now on
//   {"event":"error","error":"..."}             the driver gives up (exit 1)
// Commands (any may carry "id", echoed in the reply):
//   {"cmd":"dial","target":"1002"}               -> {"ok":true,"cmd":"dial"}
//   {"cmd":"answer"} {"cmd":"decline"} {"cmd":"hangup"}
//   {"cmd":"mute"}  (toggles)                    -> {"ok":true,"cmd":"mute","muted":true}
//   {"cmd":"wait","call":"in call","timeout_ms":10000}
//        also "reg" and "muted"; all given must hold; "ended" matches
//        "ended: <cause>" (a word matches itself or "<word>: ...")
//                                                -> {"ok":true,"cmd":"wait","state":{...}}
//   {"cmd":"state"}                              -> {"ok":true,"cmd":"state","state":{reg,call,muted,peer}}
//   {"cmd":"stats"}                              -> {"ok":true,"cmd":"stats","stats":{packetsReceived,...}}
//   {"cmd":"freq"}                               -> {"ok":true,"cmd":"freq","freq":1000.2}  (null: silence)
//   {"cmd":"level","freq":1000}                  -> {"ok":true,"cmd":"level","level_db":-12.3}
//   {"cmd":"screenshot","path":"/tmp/p.png"}     -> {"ok":true,"cmd":"screenshot","path":...}
//   {"cmd":"quit"}                               -> {"ok":true,"cmd":"quit"}, then exit 0
//   {"cmd":"crash"}                              -> {"ok":true,"cmd":"crash"}: Chromium
//        killed (SIGKILL: no BYE, no goodbye), then exit 0
// A failure is {"ok":false,"cmd":...,"error":"..."}. Every wait is bounded:
// clicks 2 s (answer/decline/hangup/dial take "timeout_ms"), page calls 5 s,
// "wait" its timeout_ms (default 10 s, at most 120 s). End of stdin = quit.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const CLICK_MS = 2000;
const EVAL_MS = 5000;
const WAIT_DEFAULT_MS = 10000;
const WAIT_MAX_MS = 120000;
const START_MS = 20000;

// ------------------------------------------------------------------ output

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function note(text) {
  process.stderr.write(`[phone.mjs] ${text}\n`);
}

// The first line of an error (Playwright's carry a call log below).
function firstLine(e) {
  return String((e && e.message) || e).split('\n')[0];
}

// ------------------------------------------------------------------ options

function options() {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      wav: { type: 'string' },
      server: { type: 'string' },
      realm: { type: 'string' },
      'raw-audio': { type: 'boolean' },
      codecs: { type: 'string' },
      chromium: { type: 'string' },
      'idle-ms': { type: 'string' },
    },
    strict: true,
  });
  for (const need of ['base', 'user', 'password']) {
    if (!values[need]) throw new Error(`--${need} is required`);
  }
  if (values.wav) {
    values.wav = path.resolve(values.wav);
    if (!fs.existsSync(values.wav)) throw new Error(`--wav ${values.wav}: no such file`);
  }
  values.base = values.base.replace(/\/+$/, '');
  values.chromium = values.chromium || process.env.CHROMIUM || '/usr/bin/chromium';
  values.idleMs = Number(values['idle-ms'] || 600000);
  return values;
}

// ------------------------------------------------------------ bounded waits

function withTimeout(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------- page state

// The last state the page reported, and the "wait" commands pending.
let current = { reg: '', call: '', muted: false, peer: '' };
const waiters = new Set();

// A `phone-state` event of the page (forwarded by the init script).
function onPageEvent(detail) {
  const before = current;
  current = { reg: detail.reg, call: detail.call, muted: detail.muted, peer: detail.peer };
  if (detail.changed === 'reg' && detail.reg !== before.reg) out({ event: 'reg', state: detail.reg });
  if (detail.changed === 'call' && detail.call !== before.call) out({ event: 'call', state: detail.call });
  if (detail.changed === 'muted' && detail.muted !== before.muted) out({ event: 'mute', muted: detail.muted });
  for (const w of waiters) w();
}

// True when `state` (e.g. "ended: busy") is `want` or `want: ...`.
function stateIs(state, want) {
  return state === want || String(state).startsWith(`${want}:`);
}

// Resolves when `test(current)` holds, rejects after `ms`.
function waitFor(test, ms) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!test(current)) return;
      waiters.delete(check);
      clearTimeout(timer);
      resolve(current);
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`timeout after ${ms} ms`));
    }, ms);
    waiters.add(check);
    check();
  });
}

// ------------------------------------------------------------------ browser

async function openPage(opts) {
  const args = [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    '--ignore-certificate-errors',
    '--autoplay-policy=no-user-gesture-required',
    // getUserMedia needs a secure context: loopback is one, other hosts not.
    `--unsafely-treat-insecure-origin-as-secure=${new URL(opts.base).origin}`,
  ];
  if (opts.wav) args.push(`--use-file-for-fake-audio-capture=${opts.wav}`);
  const browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args,
    timeout: START_MS,
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => note(`page ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => note(`page exception: ${firstLine(e)}`));
  page.on('crash', () => fail('the page crashed'));
  page.on('close', () => fail('the page closed'));
  await page.exposeFunction('__phoneDriverEvent', onPageEvent);
  await page.addInitScript(() => {
    window.addEventListener('phone-state', (e) => window.__phoneDriverEvent(e.detail));
  });
  const query = new URLSearchParams();
  if (opts['raw-audio']) query.set('raw-audio', '');
  if (opts.codecs) query.set('codecs', opts.codecs);
  const url = `${opts.base}/phone${query.size ? `?${query}` : ''}`;
  const reply = await page.goto(url, { timeout: START_MS });
  if (!reply || reply.status() !== 200) {
    throw new Error(`GET ${url}: ${reply ? reply.status() : 'no reply'}`);
  }
  await withTimeout(page.evaluate(() => window.phone.ready), START_MS, 'settings');
  return { browser, page };
}

// Fills the login form and clicks Register.
async function logIn(page, opts) {
  await page.fill('#extension', opts.user, { timeout: CLICK_MS });
  await page.fill('#password', opts.password, { timeout: CLICK_MS });
  if (opts.server) await page.fill('#server-url', opts.server, { timeout: CLICK_MS });
  if (opts.realm) await page.fill('#realm', opts.realm, { timeout: CLICK_MS });
  current = await evaluate(page, () => window.phone.state());
  await page.click('#register-button', { timeout: CLICK_MS });
  return page.inputValue('#server-url', { timeout: CLICK_MS });
}

function evaluate(page, fn, arg) {
  return withTimeout(page.evaluate(fn, arg), EVAL_MS, 'page');
}

// --------------------------------------------------------------- commands

function clickTimeout(c) {
  return Math.min(Number(c.timeout_ms) || CLICK_MS, WAIT_MAX_MS);
}

// Clicks a button as a person would: fails when it stays disabled (or
// hidden) for `ms`, saying so with the page's state.
async function click(page, selector, ms) {
  try {
    await page.click(selector, { timeout: ms });
  } catch (e) {
    const err = new Error(`${selector} not clickable within ${ms} ms (disabled in this state?)`);
    err.extra = { state: await evaluate(page, () => window.phone.state()).catch(() => current) };
    throw err;
  }
}

const COMMANDS = {
  async dial(page, c) {
    if (!c.target) throw new Error('dial needs "target"');
    await page.fill('#dial-target', String(c.target), { timeout: CLICK_MS });
    await click(page, '#dial-button', clickTimeout(c));
    return {};
  },
  async answer(page, c) {
    await click(page, '#answer-button', clickTimeout(c));
    return {};
  },
  async decline(page, c) {
    await click(page, '#decline-button', clickTimeout(c));
    return {};
  },
  async hangup(page, c) {
    await click(page, '#hangup-button', clickTimeout(c));
    return {};
  },
  async mute(page) {
    const before = (await evaluate(page, () => window.phone.state())).muted;
    await click(page, '#mute-button', CLICK_MS);
    const now = await waitFor((s) => s.muted !== before, CLICK_MS);
    return { muted: now.muted };
  },
  async wait(page, c) {
    const ms = Math.min(Number(c.timeout_ms) || WAIT_DEFAULT_MS, WAIT_MAX_MS);
    const want = ['reg', 'call', 'muted'].filter((k) => c[k] !== undefined);
    if (want.length === 0) throw new Error('wait needs "reg", "call" or "muted"');
    current = await evaluate(page, () => window.phone.state());
    const test = (s) => want.every((k) => (k === 'muted' ? s.muted === c.muted : stateIs(s[k], c[k])));
    try {
      return { state: await waitFor(test, ms) };
    } catch (e) {
      const err = new Error(firstLine(e));
      err.extra = { state: current };
      throw err;
    }
  },
  async state(page) {
    return { state: await evaluate(page, () => window.phone.state()) };
  },
  async stats(page) {
    return { stats: await evaluate(page, () => window.phone.stats()) };
  },
  async freq(page) {
    return { freq: await evaluate(page, () => window.phone.dominantFrequency()) };
  },
  async level(page, c) {
    if (c.freq === undefined) throw new Error('level needs "freq"');
    return { level_db: await evaluate(page, (f) => window.phone.toneLevel(f), Number(c.freq)) };
  },
  async screenshot(page, c) {
    if (!c.path) throw new Error('screenshot needs "path"');
    await withTimeout(page.screenshot({ path: c.path, fullPage: true }), EVAL_MS, 'screenshot');
    return { path: c.path };
  },
  async quit() {
    return {};
  },
  // The browser dies at once (SIGKILL): no BYE, no pagehide, its
  // WebSocket and media gone, as a crash or a pulled cable looks to the
  // PBX. The driver exits after the reply.
  async crash() {
    closing = true;
    // Chromium is this process's child (Playwright launched it); its own
    // children (renderer, network service) go when it goes.
    execFileSync('pkill', ['-KILL', '-P', String(process.pid)]);
    return {};
  },
};

// One command line: its reply line; true when it was "quit".
async function run(page, line) {
  let c;
  try {
    c = JSON.parse(line);
    if (!c || typeof c !== 'object') throw new Error('not an object');
  } catch (e) {
    out({ ok: false, error: `not a JSON command: ${firstLine(e)}` });
    return false;
  }
  const reply = { cmd: c.cmd };
  if (c.id !== undefined) reply.id = c.id;
  const handler = Object.hasOwn(COMMANDS, c.cmd) ? COMMANDS[c.cmd] : null;
  if (!handler) {
    out({ ok: false, ...reply, error: `unknown command ${JSON.stringify(c.cmd)}` });
    return false;
  }
  try {
    out({ ok: true, ...reply, ...(await handler(page, c)) });
  } catch (e) {
    out({ ok: false, ...reply, error: firstLine(e), ...(e.extra || {}) });
  }
  return c.cmd === 'quit' || c.cmd === 'crash';
}

// ------------------------------------------------------------------- main

let browser = null;
let closing = false;

async function shutdown(code) {
  if (closing) return;
  closing = true;
  if (browser) await withTimeout(browser.close(), 5000, 'browser close').catch(() => {});
  process.exit(code);
}

function fail(why) {
  if (closing) return;
  out({ event: 'error', error: why });
  note(why);
  shutdown(1);
}

async function main() {
  let opts;
  try {
    opts = options();
  } catch (e) {
    note(firstLine(e));
    process.exit(2);
  }
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  let page;
  try {
    ({ browser, page } = await openPage(opts));
    const server = await logIn(page, opts);
    out({ event: 'ready', server });
  } catch (e) {
    fail(firstLine(e));
    return;
  }
  let idle = null;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => fail(`no command for ${opts.idleMs} ms`), opts.idleMs);
  };
  armIdle();
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    clearTimeout(idle);
    if (await run(page, line)) break;
    armIdle();
  }
  clearTimeout(idle);
  await shutdown(0);
}

main();
