// Browser tests: the built UI (dist-e2e, mocked backend) in Debian's Chromium via playwright-core.
// Run `vite build --mode e2e` first (`npm run test:browser` does both).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { chatTests } from './chat-tests.mjs';
import { videoTests } from './video-tests.mjs';
import { managerTests } from './manager-tests.mjs';
import { assert, run, test } from './harness.mjs';

const UI = join(import.meta.dirname, '..');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PORT = Number(process.env.E2E_PORT ?? 4173);
const BASE = `http://127.0.0.1:${PORT}`;
const SHOTS = join(UI, 'test-results');
process.env.SHOTS = SHOTS;

async function waitForServer(url, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${ms} ms`);
}

async function open(ctx, scenario) {
  const page = await ctx.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${BASE}/e2e/index.html?scenario=${scenario}`);
  return { page, errors };
}

test('the production dist holds no mock backend', () => {
  const dist = join(UI, 'dist', 'assets');
  assert(existsSync(dist), 'ui/dist is missing: run `npm run build` first');
  for (const file of readdirSync(dist)) {
    const text = readFileSync(join(dist, file), 'utf8');
    assert(!text.includes('mock backend'), `${file} contains the mock backend`);
  }
});

test('no model: the panel says where models are looked for', async (ctx) => {
  const { page, errors } = await open(ctx, 'no-model');
  const panel = page.getByTestId('no-model');
  await panel.waitFor({ timeout: 10_000 });
  const title = await panel.locator('h2').textContent();
  assert(title === 'No model installed yet', `title was ${JSON.stringify(title)}`);
  const paths = await panel.locator('.locations code').allTextContents();
  assert(
    paths.join('|') ===
      '/home/ada/.local/share/dev.glimpse.app/models|/home/ada/.cache/huggingface/hub',
    `paths were ${JSON.stringify(paths)}`,
  );
  const text = await panel.textContent();
  assert(text.includes('model manager'), 'the panel does not mention the model manager');
  await page.screenshot({ path: join(SHOTS, 'browser-no-model.png') });
  assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
});

test('dark theme follows prefers-color-scheme', async (ctx) => {
  const { page } = await open(ctx, 'no-model');
  await page.getByTestId('no-model').waitFor({ timeout: 10_000 });
  const bg = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  await page.emulateMedia({ colorScheme: 'light' });
  const light = await bg();
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await bg();
  assert(light === 'rgb(247, 247, 251)', `light background was ${light}`);
  assert(dark === 'rgb(19, 18, 28)', `dark background was ${dark}`);
  await page.screenshot({ path: join(SHOTS, 'browser-no-model-dark.png') });
});

test('an app error is shown with its kind', async (ctx) => {
  const { page } = await open(ctx, 'unreadable');
  const panel = page.getByTestId('error');
  await panel.waitFor({ timeout: 10_000 });
  const kind = await panel.getAttribute('data-kind');
  assert(kind === 'unreadableFolder', `kind was ${kind}`);
  const text = await panel.textContent();
  assert(text.includes('Permission denied'), `text was ${JSON.stringify(text)}`);
});

chatTests((scenario) => open(globalThis.ctx, scenario));
videoTests((scenario) => open(globalThis.ctx, scenario));
managerTests((scenario) => open(globalThis.ctx, scenario));

await run({
  async before() {
    assert(existsSync(join(UI, 'dist-e2e', 'e2e', 'index.html')), 'run `vite build --mode e2e` first');
    mkdirSync(SHOTS, { recursive: true });
    // Detached so the whole process group (npx -> vite) can be killed afterwards.
    const server = spawn(
      process.execPath,
      [join(UI, 'node_modules/vite/bin/vite.js'), 'preview', '--mode', 'e2e', '--outDir', 'dist-e2e',
        '--port', String(PORT), '--strictPort', '--host', '127.0.0.1'],
      { cwd: UI, detached: true, stdio: 'ignore' },
    );
    await waitForServer(`${BASE}/e2e/index.html`, 15_000);
    const profile = mkdtempSync(join(tmpdir(), 'glimpse-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1000, height: 720 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    globalThis.ctx = { server, browser, profile };
    return globalThis.ctx;
  },
  async after(ctx) {
    if (!ctx) return;
    await ctx.browser?.close();
    try {
      process.kill(-ctx.server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    rmSync(ctx.profile, { recursive: true, force: true });
  },
});
