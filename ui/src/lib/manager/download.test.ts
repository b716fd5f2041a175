import { describe, expect, it } from 'vitest';
import { applyEvent, isActive, settle, startingView } from './download';

const started = {
  event: 'started' as const,
  repo: 'Qwen/x',
  commit: 'c0ffee',
  files: [
    { name: 'config.json', size: 100, etag: 'a', sha256: null },
    { name: 'model.safetensors', size: 900, etag: 'b', sha256: 'b' },
  ],
  totalBytes: 1000,
  alreadyDone: 300,
};

describe('download view', () => {
  it('folds events into per-file and total progress', () => {
    let v = applyEvent(startingView('Qwen/x'), started);
    expect(v.status).toBe('downloading');
    expect(v.totalDone).toBe(300);
    expect(v.files.map((f) => f.done)).toEqual([0, 0]);
    v = applyEvent(v, { event: 'fileDone', file: 'config.json' });
    v = applyEvent(v, {
      event: 'progress', file: 'model.safetensors', fileDone: 450, fileSize: 900, totalDone: 550,
      totalBytes: 1000, bytesPerSec: 100, etaSecs: 4.5,
    });
    expect(v.files).toEqual([
      { name: 'config.json', size: 100, done: 100 },
      { name: 'model.safetensors', size: 900, done: 450 },
    ]);
    expect(v.current).toBe('model.safetensors');
    expect([v.totalDone, v.bytesPerSec, v.etaSecs]).toEqual([550, 100, 4.5]);
    v = applyEvent(v, { event: 'fileDone', file: 'model.safetensors' });
    expect(v.current).toBeNull();
    v = applyEvent(v, { event: 'finished', snapshot: '/c/snap' });
    expect(v.snapshot).toBe('/c/snap');
    expect(isActive(v)).toBe(true);
  });

  it('settles as complete, paused, cancelled or failed', () => {
    const v = applyEvent(startingView('Qwen/x'), started);
    const done = settle(v, { ok: true, value: { status: 'complete', snapshot: '/s' } }, false);
    expect([done.status, done.totalDone, done.snapshot]).toEqual(['complete', 1000, '/s']);
    const paused = settle(v, { ok: true, value: { status: 'stopped', keptBytes: 640 } }, false);
    expect([paused.status, paused.totalDone, paused.etaSecs]).toEqual(['paused', 640, null]);
    expect(settle(v, { ok: true, value: { status: 'stopped', keptBytes: 0 } }, true).status).toBe('cancelled');
    const failed = settle(v, { ok: false, error: { kind: 'offline', message: 'cannot reach the model hub' } }, false);
    expect(failed.status).toBe('failed');
    expect(failed.error?.kind).toBe('offline');
    expect(isActive(failed)).toBe(false);
    expect(isActive(undefined)).toBe(false);
  });

  it('a pause asked for before the listing arrives is kept', () => {
    const v = applyEvent({ ...startingView('Qwen/x'), status: 'pausing' }, started);
    expect(v.status).toBe('pausing');
  });
});
