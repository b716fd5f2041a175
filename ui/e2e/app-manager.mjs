// App end-to-end tests of the model manager (issue 6): the real glimpse-app with the real engine,
// driven over WebDriver like app-webdriver.mjs, with a fake Hugging Face Hub served by this file
// on loopback (HF_ENDPOINT points the app at it). The hub serves the trained grounding fixture
// (tests/fixtures/models/grounding) under whatever repository the app asks for, with the routes
// the downloader uses: the listing with sizes, blob ids and LFS sha256s, and resolve URLs with
// Range support and the Hub's ETag headers.
//
//   APP_BIN=/abs/path/to/glimpse-app xvfb-run -a node e2e/app-manager.mjs
//
// Test ids used (documented with the rest in e2e/manager-tests.mjs): open-manager, model-manager,
// recommended-repo, download-recommended, download-progress[data-repo][data-status],
// partial-download[data-repo], resume-partial, local-model[data-path][data-usable], local-load,
// load-quant, loaded-precision,
// add-folder-path, loaded-model, plus the chat's attach-path, composer, send, message.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert, run, test } from './harness.mjs';
import { APP, ENTER, FIXTURES, SHOTS, checkAppEnvironment, freePort, sleep, startDriver, wd } from './webdriver.mjs';

const MODEL = join(FIXTURES, 'models', 'grounding');
const RED_SQUARE = join(FIXTURES, 'media', 'redsquare_128x96.png');
const PROMPT = 'Locate the red square, output its bbox coordinates using JSON format.';
const COMMIT = '5b1e0c0ffee0123456789abcdef0123456789abc';

// ---- The fake hub ----

/** Serves MODEL as any repository at `main`. `slowMs` paces the weights (32 KiB per step) so a
 *  download can be interrupted; `log` records every request. */
async function startHub() {
  const files = readdirSync(MODEL).sort().map((name) => {
    const bytes = readFileSync(join(MODEL, name));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const gitSha = createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
    return { name, bytes, sha256, gitSha, lfs: name.endsWith('.safetensors') };
  });
  const hub = { log: [], slowMs: 0, corrupt: false };
  const server = createHttpServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hub.log.push({ method: req.method, path, range: req.headers.range });
    const listing = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/main$/.exec(path);
    if (listing) {
      const siblings = files.map((f) => ({
        rfilename: f.name,
        size: f.bytes.length,
        blobId: f.gitSha,
        ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.bytes.length, pointerSize: 134 } } : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ id: listing[1], sha: COMMIT, siblings }));
    }
    const resolve = /^\/[^/]+\/[^/]+\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const file = resolve && resolve[1] === COMMIT && files.find((f) => f.name === resolve[2]);
    if (!file) {
      res.writeHead(404);
      return res.end('not found');
    }
    const headers = { etag: `"${file.lfs ? file.sha256 : file.gitSha}"`, 'accept-ranges': 'bytes', 'x-repo-commit': COMMIT };
    if (file.lfs) Object.assign(headers, { 'x-linked-etag': `"${file.sha256}"`, 'x-linked-size': String(file.bytes.length) });
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const body = file.bytes.subarray(from);
    if (from > 0) headers['content-range'] = `bytes ${from}-${file.bytes.length - 1}/${file.bytes.length}`;
    headers['content-length'] = String(body.length);
    res.writeHead(from > 0 ? 206 : 200, headers);
    if (req.method === 'HEAD') return res.end();
    if (file.lfs && hub.corrupt) {
      const bad = Buffer.from(body);
      bad[0] ^= 0xff;
      return res.end(bad);
    }
    if (!file.lfs || hub.slowMs === 0) return res.end(body);
    for (let at = 0; at < body.length && !res.destroyed; at += 32 * 1024) {
      res.write(body.subarray(at, at + 32 * 1024));
      await sleep(hub.slowMs);
    }
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  hub.endpoint = `http://127.0.0.1:${server.address().port}`;
  hub.close = () => new Promise((r) => {
    server.closeAllConnections();
    server.close(r);
  });
  hub.files = files;
  return hub;
}

// ---- WebDriver ----

/** A driver whose apps get a fresh empty home and HF_ENDPOINT = the fake hub. */
async function withDriver(hub, fn) {
  const driver = await startDriver({ HF_ENDPOINT: hub.endpoint });
  try {
    return await fn(driver);
  } finally {
    driver.stop();
  }
}

/** One app session; `fn` gets a small page API. On failure the window's text is added. */
async function withApp(driver, fn) {
  const { sessionId: s } = await wd(driver.base, 'POST', '/session', {
    capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: APP, args: [] } } },
  });
  const call = (method, path, body) => wd(driver.base, method, `/session/${s}${path}`, body);
  const page = {
    async find(css, root) {
      try {
        const path = root ? `/element/${root}/element` : '/element';
        return Object.values(await call('POST', path, { using: 'css selector', value: css }))[0];
      } catch (e) {
        if (e.code === 'no such element') return null;
        throw e;
      }
    },
    async findAll(css) {
      return (await call('POST', '/elements', { using: 'css selector', value: css })).map((el) => Object.values(el)[0]);
    },
    text: (id) => call('GET', `/element/${id}/text`),
    attr: (id, name) => call('GET', `/element/${id}/attribute/${name}`),
    click: (id) => call('POST', `/element/${id}/click`, {}),
    type: (id, value) => call('POST', `/element/${id}/value`, { text: value }),
    exec: (script, args = []) => call('POST', '/execute/sync', { script, args }),
    screenshot: () => call('GET', '/screenshot'),
    /** Polls `f` until it returns something truthy. */
    async until(what, f, ms = 30_000) {
      const end = Date.now() + ms;
      let last;
      for (;;) {
        try {
          const v = await f();
          if (v) return v;
        } catch (e) {
          last = e;
        }
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
        await sleep(150);
      }
    },
    async clickOn(css, what = css, ms) {
      const id = await page.until(what, () => page.find(css), ms);
      await page.click(id);
    },
  };
  try {
    return await fn(page);
  } catch (e) {
    const shown = await page.exec('return document.body.innerText;').catch(() => '?');
    e.message += `\n     window text: ${JSON.stringify(shown).slice(0, 2000)}`;
    throw e;
  } finally {
    await wd(driver.base, 'DELETE', `/session/${s}`).catch(() => {});
  }
}

// ---- Steps ----

async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  // WebKit paints a little after the DOM changes; let the frame catch up.
  await sleep(300);
  writeFileSync(join(SHOTS, name), Buffer.from(await page.screenshot(), 'base64'));
}

async function openManager(page) {
  await page.clickOn('[data-testid="open-manager"], [data-testid="header-manager"]', 'a way into the model manager');
  await page.until('the model manager', () => page.find('[data-testid="model-manager"]'));
}

/** Loads the usable local model at `path` (or named `name`) and waits for the chat's badge. */
async function loadLocal(page, match) {
  const entry = await page.until(`a usable local model ${match}`, async () => {
    for (const id of await page.findAll('[data-testid="local-model"][data-usable="true"]')) {
      if ((await page.attr(id, 'data-path')) === match || (await page.text(id)).includes(match)) return id;
    }
    return null;
  }, 60_000);
  await page.click(await page.find('[data-testid="local-load"]', entry));
  return page.until('the loaded-model badge', () => page.find('[data-testid="loaded-model"]'), 120_000);
}

async function askAboutRedSquare(page) {
  // Temperature 0: the trained fixture then answers exactly.
  const ok = await page.exec(
    `const el = document.querySelector('[data-testid="setting-temperature"]') ??
       [...document.querySelectorAll('label')].find((l) => l.textContent.trim().startsWith('Temperature'))?.querySelector('input');
     if (!el) return false;
     Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, '0');
     el.dispatchEvent(new Event('input', { bubbles: true }));
     el.dispatchEvent(new Event('change', { bubbles: true }));
     return true;`);
  assert(ok, 'no temperature setting');
  const input = await page.until('the attach-path input', () => page.find('[data-testid="attach-path"]'));
  await page.type(input, RED_SQUARE + ENTER);
  await page.until('the attachment', () => page.find('[data-testid="attachment"]'));
  const composer = await page.until('the composer', () => page.find('[data-testid="composer"]'));
  await page.type(composer, PROMPT);
  await page.clickOn('[data-testid="send"]');
  const answer = await page.until('a complete answer', async () => {
    const all = await page.findAll('[data-testid="message"][data-role="assistant"]');
    if (!all.length) return null;
    const id = all[all.length - 1];
    const status = await page.attr(id, 'data-status');
    return status === 'streaming' ? null : { status, text: await page.text(id) };
  }, 120_000);
  assert(answer.status === 'complete', `answer status ${answer.status}: ${answer.text}`);
  assert(answer.text.includes('red square'), `answer text: ${answer.text}`);
}

const downloadCss = (repo, status) =>
  `[data-testid="download-progress"][data-repo="${repo}"]${status ? `[data-status="${status}"]` : ''}`;

// ---- Tests ----

let hub;

test('a fresh start downloads the recommended model from the hub, verifies it, loads it and answers', () =>
  withDriver(hub, (driver) =>
    withApp(driver, async (page) => {
      hub.log.length = 0;
      await page.until('the no-model panel', () => page.find('[data-testid="no-model"]'));
      await openManager(page);
      const repo = await page.text(await page.until('the recommendation', () => page.find('[data-testid="recommended-repo"]')));
      assert(/^Qwen\/Qwen3-VL-\S+-Instruct$/.test(repo), `recommended: ${repo}`);
      // Nothing so far has touched the network.
      assert(hub.log.length === 0, `requests before any download: ${JSON.stringify(hub.log)}`);

      await page.clickOn('[data-testid="download-recommended"]');
      await page.until('the download to finish', async () => {
        if (await page.find(downloadCss(repo, 'failed'))) throw new Error('the download failed');
        return page.find(downloadCss(repo, 'complete'));
      }, 60_000);
      assert(hub.log.some((r) => r.path === `/api/models/${repo}/revision/main`), 'no listing request');
      // In the shared Hugging Face cache, each blob named by its hash, the weights by their sha256.
      const blobs = join(driver.home, '.cache/huggingface/hub', `models--${repo.replace('/', '--')}`, 'blobs');
      const weights = hub.files.find((f) => f.lfs);
      assert(existsSync(join(blobs, weights.sha256)), `no verified weights blob in ${blobs}`);
      assert(!readdirSync(blobs).some((b) => b.endsWith('.incomplete')), 'partial files left behind');

      await screenshot(page, 'app-manager-downloaded.png');
      const badge = await page.text(await loadLocal(page, repo));
      console.log(`     loaded: ${badge}`);
      assert(badge.startsWith(repo) && /· \d+(\.\d)? [kMG]?B$/.test(badge), `badge names the repo and the memory taken: ${badge}`);
      await askAboutRedSquare(page);
    })));

test('a download interrupted by quitting the app is offered for resuming and resumes with a Range request', () =>
  withDriver(hub, async (driver) => {
    let repo;
    hub.slowMs = 100;
    try {
      await withApp(driver, async (page) => {
        await openManager(page);
        repo = await page.text(await page.until('the recommendation', () => page.find('[data-testid="recommended-repo"]')));
        hub.log.length = 0;
        await page.clickOn('[data-testid="download-recommended"]');
        // Progress streams from the back end: speed and time left show while the weights arrive.
        const speed = await page.until('the download speed', () => page.find('[data-testid="download-speed"]'), 30_000);
        const shown = await page.text(speed);
        assert(/[kMG]?B\/s$/.test(shown), `speed: ${shown}`);
        const total = await page.text(await page.find('[data-testid="download-total"]'));
        console.log(`     while downloading: ${total} · ${shown}`);
        await screenshot(page, 'app-manager-downloading.png');
        // Quit once part of the weights has arrived.
        await page.until('part of the weights', () => hub.log.some((r) => r.path.endsWith('.safetensors')), 30_000);
        await sleep(600);
      });
    } finally {
      hub.slowMs = 0;
    }
    await sleep(500);
    await withApp(driver, async (page) => {
      await openManager(page);
      await page.until('the unfinished download', () => page.find(`[data-testid="partial-download"][data-repo="${repo}"]`));
      hub.log.length = 0;
      hub.slowMs = 100;
      try {
        await page.clickOn('[data-testid="resume-partial"]');
        // Pause it again from the UI, then resume: each run continues where the last stopped.
        await page.until('the resumed transfer', () => page.find('[data-testid="download-speed"]'), 30_000);
        await page.clickOn('[data-testid="pause-download"]');
        await page.until('the pause', () => page.find(downloadCss(repo, 'paused')), 30_000);
      } finally {
        hub.slowMs = 0;
      }
      await page.clickOn('[data-testid="resume-download"]');
      await page.until('the resumed download to finish', async () => {
        if (await page.find(downloadCss(repo, 'failed'))) throw new Error('the download failed');
        return page.find(downloadCss(repo, 'complete'));
      }, 60_000);
      const starts = hub.log
        .filter((r) => r.path.endsWith('.safetensors'))
        .map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? '')?.[1] ?? 0));
      assert(starts.length === 2 && starts[0] > 0 && starts[1] > starts[0],
        `weights requests after the restart start at ${starts} (${JSON.stringify(hub.log)})`);
      await page.until('the model listed as usable', () => page.find('[data-testid="local-model"][data-usable="true"]'));
    });
  }));

test('cancelling a download deletes its partial files', () =>
  withDriver(hub, (driver) =>
    withApp(driver, async (page) => {
      await openManager(page);
      const repo = await page.text(await page.until('the recommendation', () => page.find('[data-testid="recommended-repo"]')));
      hub.slowMs = 100;
      try {
        await page.clickOn('[data-testid="download-recommended"]');
        await page.until('the transfer', () => page.find('[data-testid="download-speed"]'), 30_000);
        await page.clickOn('[data-testid="cancel-download"]');
        await page.until('the cancel', () => page.find(downloadCss(repo, 'cancelled')), 30_000);
      } finally {
        hub.slowMs = 0;
      }
      // Everything the download wrote is gone, so nothing half-made is listed either.
      const repoDir = join(driver.home, '.cache/huggingface/hub', `models--${repo.replace('/', '--')}`);
      assert(!existsSync(repoDir), `left behind: ${existsSync(repoDir) ? readdirSync(join(repoDir, 'blobs')) : ''}`);
      await page.until('the empty local list', () => page.find('[data-testid="no-local-models"]'));
      assert(!(await page.find('[data-testid="partial-download"]')), 'still offered for resuming');
    })));

test('a folder added by typing its path is validated, loads, answers, and is remembered', () =>
  withDriver(hub, async (driver) => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'glimpse-folder-')));
    const model = join(dir, 'my-tiny-vl');
    const broken = join(dir, 'not-a-model');
    try {
      cpSync(MODEL, model, { recursive: true });
      mkdirSync(broken);
      await withApp(driver, async (page) => {
        await openManager(page);
        const input = await page.until('the add-folder input', () => page.find('[data-testid="add-folder-path"]'));
        await page.type(input, broken + ENTER);
        const bad = await page.until('the unusable folder', () => page.find(`[data-testid="local-model"][data-path="${broken}"]`));
        assert((await page.attr(bad, 'data-usable')) === 'false', 'an empty folder is usable');
        const reason = await page.text(await page.find('[data-testid="local-model-reason"]', bad));
        assert(reason.includes('config.json'), `reason: ${reason}`);
        await page.type(input, model + ENTER);
        // With 8-bit weights, on the real engine: in this fixture only o_proj's input width (64)
        // fits Q8_0's 32-blocks, and the trained model keeps its answer.
        await page.until('the weights selector', () => page.find('[data-testid="load-quant"]'));
        assert(await page.exec(
          `const s = document.querySelector('[data-testid="load-quant"]');
           s.value = 'q8_0';
           s.dispatchEvent(new Event('change', { bubbles: true }));
           return s.value === 'q8_0';`), 'could not choose 8-bit weights');
        await loadLocal(page, model);
        await askAboutRedSquare(page);
        await openManager(page);
        const precision = await page.text(await page.until('the loaded precision', () => page.find('[data-testid="loaded-precision"]')));
        assert(precision.endsWith('with 8-bit (Q8_0) weights'), `precision: ${precision}`);
      });
      // After a restart the folder is still there: in the chat's model list, ready to load.
      await withApp(driver, async (page) => {
        await page.until('the added folder in the model list', () => page.find(`[data-testid="model-entry"][data-path="${model}"]`));
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('an unreachable hub and a corrupt download are clear messages, and a retry recovers', async () => {
  const closed = { endpoint: `http://127.0.0.1:${await freePort()}` };
  await withDriver(closed, (driver) =>
    withApp(driver, async (page) => {
      await openManager(page);
      await page.clickOn('[data-testid="download-recommended"]');
      const error = await page.until('the download error', () => page.find('[data-testid="download-error"]'));
      assert((await page.attr(error, 'data-kind')) === 'offline', 'error kind');
      const message = await page.text(error);
      assert(message.includes('cannot reach the model hub') && message.includes(closed.endpoint), `message: ${message}`);
    }));
  await withDriver(hub, (driver) =>
    withApp(driver, async (page) => {
      await openManager(page);
      hub.corrupt = true;
      try {
        await page.clickOn('[data-testid="download-recommended"]');
        const error = await page.until('the checksum error', () => page.find('[data-testid="download-error"]'), 60_000);
        assert((await page.attr(error, 'data-kind')) === 'checksumMismatch', 'error kind');
        assert((await page.text(error)).includes('model.safetensors is corrupt'), 'message');
      } finally {
        hub.corrupt = false;
      }
      await page.clickOn('[data-testid="resume-download"]', 'the Try again button');
      await page.until('the retried download to finish', () => page.find('[data-testid="download-progress"][data-status="complete"]'), 60_000);
    }));
});

await run({
  async before() {
    checkAppEnvironment();
    hub = await startHub();
    return hub;
  },
  async after(h) {
    await h?.close();
  },
});
