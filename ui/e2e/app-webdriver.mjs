// App end-to-end tests: the real glimpse-app binary (built with tauri/custom-protocol so the UI is
// embedded) driven over W3C WebDriver by WebKitWebDriver, which is what tauri-driver runs on
// Linux. Needs a display: run under `xvfb-run` (scripts/test does). Plain fetch, no client library.
//
//   APP_BIN=/abs/path/to/glimpse-app xvfb-run -a node e2e/app-webdriver.mjs
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { assert, run, test } from './harness.mjs';

const UI = join(import.meta.dirname, '..');
const APP = process.env.APP_BIN;
const DRIVER = process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver';
const SHOTS = join(UI, 'test-results');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One W3C WebDriver call; throws with the driver's own error text. */
async function wd(base, method, path, body) {
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
async function startApp(driver) {
  const value = await wd(driver.base, 'POST', '/session', {
    capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: APP, args: [] } } },
  });
  return value.sessionId;
}

async function waitForText(driver, session, css, ms = 20_000) {
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

async function screenshot(driver, session, name) {
  const png = await wd(driver.base, 'GET', `/session/${session}/screenshot`);
  writeFileSync(join(SHOTS, name), Buffer.from(png, 'base64'));
}

async function withApp(driver, fn) {
  const session = await startApp(driver);
  try {
    return await fn(session);
  } finally {
    await wd(driver.base, 'DELETE', `/session/${session}`).catch(() => {});
  }
}

test('with no model the app says where it looked', (driver) =>
  withApp(driver, async (session) => {
    const text = await waitForText(driver, session, '[data-testid="no-model"]');
    assert(text.includes('No model installed yet'), `panel text: ${text}`);
    // The real search locations for this (empty) home, as the Rust side computed them.
    const appDir = join(driver.home, '.local/share/dev.glimpse.app/models');
    const hub = join(driver.home, '.cache/huggingface/hub');
    assert(text.includes(appDir), `no app folder ${appDir} in: ${text}`);
    assert(text.includes(hub), `no hub cache ${hub} in: ${text}`);
    assert(text.includes('model manager'), `no word of the model manager in: ${text}`);
    await screenshot(driver, session, 'app-no-model.png');
  }));

test('a Qwen3-VL folder in the app folder is found', async (driver) => {
  const dir = join(driver.home, '.local/share/dev.glimpse.app/models/tiny-qwen3-vl');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(TINY_CONFIG));
  try {
    await withApp(driver, async (session) => {
      const text = await waitForText(driver, session, '[data-testid="models"]');
      assert(text.includes('tiny-qwen3-vl'), `model list: ${text}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const TINY_CONFIG = {
  architectures: ['Qwen3VLForConditionalGeneration'],
  model_type: 'qwen3_vl',
  image_token_id: 7, video_token_id: 8, vision_start_token_id: 5, vision_end_token_id: 6,
  tie_word_embeddings: true,
  text_config: {
    vocab_size: 300, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 24, rms_norm_eps: 1e-6,
    rope_theta: 5000000.0,
    rope_scaling: { rope_type: 'default', mrope_section: [4, 4, 4], mrope_interleaved: true },
  },
  vision_config: {
    model_type: 'qwen3_vl', depth: 2, hidden_size: 32, intermediate_size: 48, num_heads: 2,
    in_channels: 3, patch_size: 16, temporal_patch_size: 2, spatial_merge_size: 2,
    out_hidden_size: 64, num_position_embeddings: 64, deepstack_visual_indexes: [0],
    hidden_act: 'gelu_pytorch_tanh',
  },
};

await run({
  async before() {
    assert(APP && isAbsolute(APP) && existsSync(APP), `APP_BIN must be the app's absolute path (got ${APP})`);
    assert(process.env.DISPLAY, 'no DISPLAY: run under xvfb-run');
    mkdirSync(SHOTS, { recursive: true });
    // A fresh home so no model on this machine leaks in and the expected paths are known.
    const home = mkdtempSync(join(tmpdir(), 'glimpse-home-'));
    const env = { ...process.env, HOME: home, TAURI_WEBVIEW_AUTOMATION: 'true' };
    for (const key of ['XDG_DATA_HOME', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'HF_HOME', 'HF_HUB_CACHE']) {
      delete env[key];
    }
    const port = await freePort();
    const proc = spawn(DRIVER, [`--port=${port}`], { env, stdio: ['ignore', 'inherit', 'inherit'] });
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
    return { base, proc, home };
  },
  async after(driver) {
    if (!driver) return;
    driver.proc.kill('SIGTERM');
    rmSync(driver.home, { recursive: true, force: true });
  },
});
