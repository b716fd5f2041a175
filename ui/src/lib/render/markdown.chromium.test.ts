// @vitest-environment node
// The sanitiser in a real browser engine: the renderer is bundled, loaded into headless Chromium
// (no CSP, so nothing but the sanitiser stands in the way), every hostile answer is rendered into
// the live page, and then every element is clicked, focused, hovered and its <details> toggled.
// Passing means no script ran (no alert dialog), nothing was fetched, and the page never navigated.
// Needs Chromium (/usr/bin/chromium, or $CHROMIUM), as the browser test tier does.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XSS_PAYLOADS } from './xss-payloads';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ORIGIN = 'https://glimpse.test/';
const ENTRY = fileURLToPath(new URL('./index.ts', import.meta.url));

async function bundle(): Promise<string> {
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: { entry: ENTRY, formats: ['iife'], name: 'GlimpseRender', fileName: 'render' },
    },
  });
  const outputs = Array.isArray(out) ? out : [out];
  for (const o of outputs) {
    if ('output' in o) {
      const chunk = o.output.find((c) => c.type === 'chunk');
      if (chunk && chunk.type === 'chunk') return chunk.code;
    }
  }
  throw new Error('vite build produced no chunk');
}

interface Observed {
  dialogs: string[];
  requests: string[];
  navigations: string[];
}

let browser: Browser;
let page: Page;
const seen: Observed = { dialogs: [], requests: [], navigations: [] };

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (set $CHROMIUM)`).toBe(true);
  const code = await bundle();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  page = await browser.newPage();
  page.on('dialog', (d) => {
    seen.dialogs.push(d.message());
    void d.dismiss();
  });
  // A real origin, so relative URLs (`src=x`) would resolve and show up as requests.
  await page.route('**/*', (route) => {
    if (route.request().url() === ORIGIN) {
      return route.fulfill({ contentType: 'text/html', body: '<!doctype html><html><head><title>t</title></head><body></body></html>' });
    }
    seen.requests.push(route.request().url());
    return route.abort();
  });
  page.on('framenavigated', (f) => seen.navigations.push(f.url()));
  await page.goto(ORIGIN);
  await page.addScriptTag({ content: code });
  seen.navigations.length = 0;
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe('renderMarkdown in Chromium', () => {
  it('renders markdown and math in the bundle (the harness works)', async () => {
    const html = await page.evaluate(() => {
      const w = window as unknown as { GlimpseRender: { renderMarkdown(t: string): string } };
      return w.GlimpseRender.renderMarkdown('**b** $x^2$ [q](https://qwen.ai)');
    });
    expect(html).toContain('<strong>b</strong>');
    expect(html).toContain('<math');
    expect(html).toContain('data-href="https://qwen.ai/"');
  });

  it('no hostile answer runs script, loads anything or navigates', async () => {
    const payloads = XSS_PAYLOADS.map(([, p]) => p);
    await page.evaluate(async (all) => {
      const w = window as unknown as {
        GlimpseRender: { renderMarkdown(t: string, m?: unknown[]): string };
      };
      for (const p of all) {
        const host = document.createElement('div');
        host.className = 'host';
        host.innerHTML = w.GlimpseRender.renderMarkdown(p, [
          { kind: 'timestamp', span: { start: 1, end: p.length - 1 }, start: 1 },
        ]);
        document.body.append(host);
      }
      // Give anything that could fire on insertion (onload, onerror, ontoggle) its chance, then poke.
      await new Promise((r) => setTimeout(r, 200));
      for (const el of document.querySelectorAll('.host *')) {
        for (const type of ['mouseover', 'mouseenter', 'focus', 'focusin', 'click', 'toggle', 'animationstart']) {
          el.dispatchEvent(new Event(type, { bubbles: true }));
        }
        if (el instanceof HTMLElement) {
          el.focus();
          el.click();
        }
      }
      await new Promise((r) => setTimeout(r, 300));
    }, payloads);
    expect(seen).toStrictEqual({ dialogs: [], requests: [], navigations: [] });
    const hosts = await page.evaluate(() => document.querySelectorAll('.host').length);
    expect(hosts).toBe(XSS_PAYLOADS.length);
    const live = await page.evaluate(
      () => document.querySelectorAll(':is(script, iframe, img, svg, form, object, embed, a[href], [style]):is(.host *)').length,
    );
    expect(live).toBe(0);
  });
});
