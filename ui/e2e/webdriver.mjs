// WebDriver helpers shared by the app end-to-end tests (app-webdriver.mjs, app-video.mjs): the
// real glimpse-app driven over W3C WebDriver by WebKitWebDriver. Plain fetch, no client library.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { assert } from './harness.mjs';

export const UI = join(import.meta.dirname, '..');
export const APP = process.env.APP_BIN;
export const DRIVER = process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver';
export const SHOTS = join(UI, 'test-results');
export const FIXTURES = join(UI, '..', 'tests', 'fixtures');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One W3C WebDriver call; throws with the driver's own error text. */
export async function wd(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) {
    const err = new Error(`${method} ${path}: ${json.value?.error}: ${json.value?.message}`);
    err.code = json.value?.error;
    throw err;
  }
  return json.value;
}

/** Starts the app in a new WebDriver session, with its own empty home folder. */
export async function startApp(driver) {
  const value = await wd(driver.base, 'POST', '/session', {
    capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: APP, args: [] } } },
  });
  return value.sessionId;
}

export async function waitForText(driver, session, css, ms = 20_000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const el = await wd(driver.base, 'POST', `/session/${session}/element`, {
        using: 'css selector',
        value: css,
      });
      const id = Object.values(el)[0];
      return await wd(driver.base, 'GET', `/session/${session}/element/${id}/text`);
    } catch (e) {
      if (e.code !== 'no such element' || Date.now() > until) throw e;
      await sleep(150);
    }
  }
}


/** The first element matching `css` (inside `root` if given), or null. */
export async function find(driver, session, css, root) {
  const path = root ? `/session/${session}/element/${root}/element` : `/session/${session}/element`;
  try {
    return Object.values(await wd(driver.base, 'POST', path, { using: 'css selector', value: css }))[0];
  } catch (e) {
    if (e.code === 'no such element') return null;
    throw e;
  }
}

export async function findAll(driver, session, css) {
  const els = await wd(driver.base, 'POST', `/session/${session}/elements`, { using: 'css selector', value: css });
  return els.map((el) => Object.values(el)[0]);
}

/** Polls `fn` until it returns something truthy; fails naming `what`. */
export async function until(what, fn, ms = 30_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(150);
  }
}

export const text = (driver, session, id) => wd(driver.base, 'GET', `/session/${session}/element/${id}/text`);
export const attr = (driver, session, id, name) =>
  wd(driver.base, 'GET', `/session/${session}/element/${id}/attribute/${name}`);
export const click = (driver, session, id) => wd(driver.base, 'POST', `/session/${session}/element/${id}/click`, {});
export const typeInto = (driver, session, id, value) =>
  wd(driver.base, 'POST', `/session/${session}/element/${id}/value`, { text: value });
export const exec = (driver, session, script, args = []) =>
  wd(driver.base, 'POST', `/session/${session}/execute/sync`, { script, args });
export const ENTER = '\uE007';

export async function screenshot(driver, session, name) {
  const png = await wd(driver.base, 'GET', `/session/${session}/screenshot`);
  writeFileSync(join(SHOTS, name), Buffer.from(png, 'base64'));
}

export async function withApp(driver, fn) {
  const session = await startApp(driver);
  try {
    return await fn(session);
  } catch (e) {
    // What the window showed when it failed.
    const shown = await exec(driver, session, 'return document.body.innerText;').catch(() => '?');
    e.message += `\n     window text: ${JSON.stringify(shown).slice(0, 1500)}`;
    throw e;
  } finally {
    await wd(driver.base, 'DELETE', `/session/${session}`).catch(() => {});
  }
}


/** Sets a settings input (found by its test id, else by its label's text) through the events
 *  Svelte's bindings listen to; the settings panel may be folded away. */
export async function setInput(driver, session, testid, label, value) {
  const ok = await exec(driver, session,
    `const byLabel = [...document.querySelectorAll('label')]
       .find((l) => l.textContent.trim().startsWith(arguments[1]))?.querySelector('input, textarea');
     const el = document.querySelector('[data-testid="${testid}"]') ?? byLabel;
     if (!el) return false;
     const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement : HTMLInputElement;
     Object.getOwnPropertyDescriptor(proto.prototype, 'value').set.call(el, arguments[0]);
     el.dispatchEvent(new Event('input', { bubbles: true }));
     el.dispatchEvent(new Event('change', { bubbles: true }));
     return true;`, [value, label]);
  assert(ok, `no [data-testid="${testid}"] (or input labelled ${label}) in the UI`);
}

export async function ask(driver, session, prompt) {
  const composer = await until('the composer', () => find(driver, session, '[data-testid="composer"]'));
  await typeInto(driver, session, composer, prompt);
  await click(driver, session, await find(driver, session, '[data-testid="send"]'));
}

/** The last assistant message's element id, status and text. */
export async function lastAnswer(driver, session) {
  const all = await findAll(driver, session, '[data-testid="message"][data-role="assistant"]');
  if (!all.length) return null;
  const id = all[all.length - 1];
  return { id, status: await attr(driver, session, id, 'data-status'), text: await text(driver, session, id) };
}

/** Copies the fixture model `name` into the app's model folder of the test home (once). */
export function installModel(driver, name) {
  const dir = join(driver.home, '.local/share/dev.glimpse.app/models', name);
  if (!existsSync(dir)) cpSync(join(FIXTURES, 'models', name), dir, { recursive: true });
  return dir;
}

/** Loads the listed model whose entry mentions `name` and waits for its badge. */
export async function loadModel(driver, session, name) {
  const entry = await until(`the ${name} model in the model list`, async () => {
    for (const id of await findAll(driver, session, '[data-testid="model-entry"]')) {
      if ((await text(driver, session, id)).includes(name)) return id;
    }
    return null;
  });
  const load = await find(driver, session, '[data-testid="load-model"]', entry);
  assert(load, 'the model entry has no load-model button');
  await click(driver, session, load);
  await until('the loaded-model badge', async () => {
    const badge = await find(driver, session, '[data-testid="loaded-model"]');
    return badge && (await text(driver, session, badge)).includes(name);
  }, 60_000);
}

/** WebKitWebDriver on a free port. The apps it starts inherit its environment: a fresh empty home
 *  (so no model or token on this machine leaks in and the expected paths are known) plus `env`. */
export async function startDriver(env = {}) {
  const home = mkdtempSync(join(tmpdir(), 'glimpse-home-'));
  const full = { ...process.env, HOME: home, TAURI_WEBVIEW_AUTOMATION: 'true' };
  for (const key of ['XDG_DATA_HOME', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'HF_HOME', 'HF_HUB_CACHE', 'HF_TOKEN', 'HF_ENDPOINT']) {
    delete full[key];
  }
  Object.assign(full, env);
  const port = await freePort();
  const proc = spawn(DRIVER, [`--port=${port}`], { env: full, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await wd(base, 'GET', '/status')).ready) break;
    } catch (e) {
      if (Date.now() > until) throw new Error(`WebKitWebDriver did not start: ${e.message}`);
    }
    await sleep(100);
  }
  return {
    base,
    proc,
    home,
    stop() {
      proc.kill('SIGTERM');
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Checks that the app binary and a display are there, and makes the screenshot folder. */
export function checkAppEnvironment() {
  assert(APP && isAbsolute(APP) && existsSync(APP), `APP_BIN must be the app's absolute path (got ${APP})`);
  assert(process.env.DISPLAY, 'no DISPLAY: run under xvfb-run');
  mkdirSync(SHOTS, { recursive: true });
}

/** The `run` hooks: one driver for all tests of a file. */
export const driverHooks = {
  async before() {
    checkAppEnvironment();
    return startDriver();
  },
  async after(driver) {
    driver?.stop();
  },
};
