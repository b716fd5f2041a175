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

  it('loads a model, shows it as loaded, and enables sending', async () => {
    await render('one-model', 'load-model');
    const send = () => document.querySelector<HTMLButtonElement>('[data-testid="send"]')!;
    const composer = document.querySelector<HTMLTextAreaElement>('[data-testid="composer"]')!;
    composer.value = 'hello';
    composer.dispatchEvent(new Event('input', { bubbles: true }));
    flushSync();
    expect(send().disabled).toBe(true);
    document.querySelector<HTMLButtonElement>('[data-testid="load-model"]')!.click();
    const badge = await vi.waitFor(() => {
      const el = document.querySelector('[data-testid="loaded-model"]');
      if (!el) throw new Error('not loaded yet');
      return el;
    });
    expect(badge.textContent).toContain('Qwen/Qwen3-VL-2B-Instruct · cpu · f32');
    expect(send().disabled).toBe(false);
  });

  it('Ctrl+N starts a new chat', async () => {
    await render('one-model', 'load-model');
    document.querySelector<HTMLButtonElement>('[data-testid="load-model"]')!.click();
    await vi.waitFor(() => expect(document.querySelector('[data-testid="loaded-model"]')).not.toBeNull());
    const composer = document.querySelector<HTMLTextAreaElement>('[data-testid="composer"]')!;
    composer.value = 'Where is the cat?';
    composer.dispatchEvent(new Event('input', { bubbles: true }));
    composer.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    await vi.waitFor(() => expect(document.querySelectorAll('[data-testid="message"]')).toHaveLength(2));
    await vi.waitFor(() => expect(document.querySelector('[data-role="assistant"][data-status="complete"]')).not.toBeNull());
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'n', ctrlKey: true, bubbles: true }));
    await vi.waitFor(() => expect(document.querySelectorAll('[data-testid="message"]')).toHaveLength(0));
    expect(document.querySelectorAll('[data-testid="conversation"]')).toHaveLength(1);
  });
});
