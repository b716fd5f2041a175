// @vitest-environment happy-dom
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { afterEach, describe, expect, it } from 'vitest';
import { NO_MODEL, UNREADABLE, installMockBackend } from '../../e2e/mock-backend';
import { appStatus, toAppError } from './ipc';

afterEach(() => clearMocks());

describe('appStatus', () => {
  it('returns the status the backend sent', async () => {
    installMockBackend('no-model');
    expect(await appStatus()).toStrictEqual({ ok: true, value: NO_MODEL });
  });

  it('passes the app error kind through', async () => {
    installMockBackend('unreadable');
    expect(await appStatus()).toStrictEqual({ ok: false, error: UNREADABLE });
  });

  it('reports a bridge failure as kind ipc', async () => {
    mockIPC(() => {
      throw 'command app_status not found';
    });
    expect(await appStatus()).toStrictEqual({
      ok: false,
      error: { kind: 'ipc', message: 'command app_status not found' },
    });
  });
});

describe('toAppError', () => {
  it.each([
    [{ kind: 'noDataDir', message: 'no home' }, { kind: 'noDataDir', message: 'no home' }],
    [new Error('boom'), { kind: 'ipc', message: 'boom' }],
    [{ kind: 'busy', message: 'an answer is being generated' }, { kind: 'busy', message: 'an answer is being generated' }],
    [{ kind: '', message: 'x' }, { kind: 'ipc', message: '[object Object]' }],
    [{ kind: 'noDataDir' }, { kind: 'ipc', message: '[object Object]' }],
    [null, { kind: 'ipc', message: 'null' }],
  ])('%j -> %j', (thrown, expected) => {
    expect(toAppError(thrown)).toStrictEqual(expected);
  });
});
