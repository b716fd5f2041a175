// @vitest-environment happy-dom
// The manager state against the mocked backend: download events arrive through a real Channel.
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { calls, installMockBackend } from '../../../e2e/mock-backend';
import { GOOD_FOLDER, OFFLINE_REPO, RECOMMENDED } from '../../../e2e/mock-manager';
import { ManagerState } from './manager.svelte';
import { ModelsState } from './models.svelte';

afterEach(() => clearMocks());

describe('ManagerState', () => {
  it('downloads the recommended model, then lists it and tells the app', async () => {
    installMockBackend('no-model', { downloadStepMs: 1 });
    const m = new ManagerState();
    await m.refresh();
    expect(m.catalog?.recommendation?.entry.repo).toBe(RECOMMENDED);
    expect(m.local?.models).toEqual([]);
    const downloaded = vi.fn();
    m.onDownloaded = downloaded;
    await m.download(RECOMMENDED);
    const view = m.downloads[RECOMMENDED];
    expect(view.status).toBe('complete');
    expect(view.totalDone).toBe(view.totalBytes);
    expect(view.files.every((f) => f.done === f.size)).toBe(true);
    expect(downloaded).toHaveBeenCalledWith(RECOMMENDED);
    expect(m.local?.models.map((x) => [x.name, x.validation.status])).toEqual([[RECOMMENDED, 'usable']]);
  });

  it('a pause keeps the bytes and a resume starts from them; cancel clears them', async () => {
    installMockBackend('no-model', { downloadStepMs: 20 });
    const m = new ManagerState();
    await m.refresh();
    const first = m.download(RECOMMENDED);
    await vi.waitFor(() => expect(m.downloads[RECOMMENDED].totalDone).toBeGreaterThan(0));
    await m.pause(RECOMMENDED);
    await first;
    const kept = m.downloads[RECOMMENDED].totalDone;
    expect(m.downloads[RECOMMENDED].status).toBe('paused');
    expect(m.local?.partialDownloads).toEqual([{ repo: RECOMMENDED, keptBytes: kept }]);
    const second = m.download(RECOMMENDED);
    await vi.waitFor(() => expect(m.downloads[RECOMMENDED].totalDone).toBeGreaterThan(kept));
    await m.cancel(RECOMMENDED);
    await second;
    expect(m.downloads[RECOMMENDED].status).toBe('cancelled');
    expect(m.local?.partialDownloads).toEqual([]);
  });

  it('a failed download keeps its error; a bad folder path is reported beside the input', async () => {
    installMockBackend('no-model', { downloadStepMs: 1 });
    const m = new ManagerState();
    await m.download(OFFLINE_REPO);
    expect(m.downloads[OFFLINE_REPO].status).toBe('failed');
    expect(m.downloads[OFFLINE_REPO].error?.kind).toBe('offline');
    expect(await m.addFolder('/nowhere')).toBe(false);
    expect(m.folderError?.kind).toBe('folderNotFound');
    expect(await m.addFolder(GOOD_FOLDER)).toBe(true);
    expect(m.folderError).toBeNull();
    expect(m.local?.models[0].source).toBe('userFolder');
    // The picker, cancelled: nothing changes and no error.
    expect(await m.addFolder()).toBe(false);
    expect(m.folderError).toBeNull();
  });
});

describe('ModelsState load and unload', () => {
  it('reports load stages, keeps the model info with memory, and unloads', async () => {
    installMockBackend('one-model');
    const models = new ModelsState();
    await models.refresh();
    const path = models.status!.models[0].path;
    const loading = models.load(path);
    expect(models.loading).toBe(path);
    expect(await loading).toBe(true);
    // Stages come through a channel; the default precision is left to the back end.
    const call = calls.find((c) => c.cmd === 'load_model');
    expect(call?.args.onProgress).toBeDefined();
    expect(call?.args.dtype).toBe('auto');
    expect(models.loaded?.memoryBytes).toBe(8_900_000_000);
    expect(models.loaded?.dtype).toBe('f32');
    expect(models.progress).toBeNull();
    models.device = 'cuda';
    expect(await models.load(path)).toBe(false);
    expect(models.error?.kind).toBe('deviceNotCompiled');
    await models.unload();
    expect(models.loaded).toBeNull();
  });
});
