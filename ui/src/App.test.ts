// @vitest-environment happy-dom
import { clearMocks } from '@tauri-apps/api/mocks';
import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NO_MODEL, UNREADABLE, installMockBackend, type Scenario } from '../e2e/mock-backend';
import App from './App.svelte';

let app: ReturnType<typeof mount> | undefined;

afterEach(() => {
  if (app) unmount(app);
  app = undefined;
  document.body.innerHTML = '';
  clearMocks();
});

async function render(scenario: Scenario, testid: string): Promise<HTMLElement> {
  installMockBackend(scenario);
  app = mount(App, { target: document.body });
  flushSync();
  return vi.waitFor(() => {
    const el = document.querySelector<HTMLElement>(`[data-testid="${testid}"]`);
    if (!el) throw new Error(`no [data-testid=${testid}] yet`);
    return el;
  });
}

describe('App', () => {
  it('explains where models are looked for when there is none', async () => {
    const panel = await render('no-model', 'no-model');
    expect(panel.querySelector('h2')?.textContent).toBe('No model installed yet');
    const paths = [...panel.querySelectorAll('.locations code')].map((c) => c.textContent);
    expect(paths).toStrictEqual(NO_MODEL.searchLocations.map((l) => l.path));
    expect(panel.textContent).toContain("Glimpse's model folder (not created yet)");
    expect(panel.textContent).toContain('model manager');
    expect(document.querySelector('.version')?.textContent).toBe('v0.1.0');
  });

  it('lists the models it found', async () => {
    const list = await render('one-model', 'models');
    expect(list.querySelector('strong')?.textContent).toBe('Qwen/Qwen3-VL-2B-Instruct');
    expect(document.querySelector('[data-testid="no-model"]')).toBeNull();
  });

  it('shows an app error as a sentence', async () => {
    const panel = await render('unreadable', 'error');
    expect(panel.dataset.kind).toBe('unreadableFolder');
    expect(panel.querySelector('h2')?.textContent).toBe('A model folder cannot be read');
    expect(panel.querySelector('p')?.textContent).toBe(UNREADABLE.message);
  });
});
