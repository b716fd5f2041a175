// @vitest-environment happy-dom
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach, describe, expect, it } from 'vitest';
import { ONE_MODEL, installMockBackend } from '../../../e2e/mock-backend';
import { ModelsState } from './models.svelte';

afterEach(() => clearMocks());

describe('ModelsState.load', () => {
  it('loads with full weights unless a quantization is chosen, and keeps the choice', async () => {
    installMockBackend('one-model');
    const models = new ModelsState();
    const path = ONE_MODEL.models[0].path;
    expect(await models.load(path)).toBe(true);
    expect(models.loaded?.quant).toBe('none');
    models.quant = 'q4k';
    expect(await models.load(path)).toBe(true);
    expect(models.loaded?.quant).toBe('q4k');
    expect(models.quant).toBe('q4k');
    const memory = models.loaded?.memoryBytes ?? 0;
    models.quant = 'none';
    await models.load(path);
    expect(models.loaded?.memoryBytes ?? 0).toBeGreaterThan(memory);
  });

  it('shows the backend refusing an unknown quantization and keeps no model', async () => {
    installMockBackend('one-model');
    const models = new ModelsState();
    // A stale value from an older settings file, say.
    models.quant = 'q3' as never;
    expect(await models.load(ONE_MODEL.models[0].path)).toBe(false);
    expect(models.error?.kind).toBe('badConfig');
    expect(models.error?.message).toContain('q3');
    expect(models.loaded).toBeNull();
  });
});
