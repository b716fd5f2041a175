// A stand-in for the Rust side, for Vitest and for the browser tests (never in the real app:
// only `vite build --mode e2e` and tests import this file). Answers mirror app_status exactly.
import { clearMocks, mockIPC, mockWindows } from '@tauri-apps/api/mocks';
import type { AppError, AppStatus } from '../src/lib/ipc';

export const HOME = '/home/ada';

export const NO_MODEL: AppStatus = {
  version: '0.1.0',
  searchLocations: [
    { kind: 'appData', path: `${HOME}/.local/share/dev.glimpse.app/models`, exists: false },
    { kind: 'huggingFaceCache', path: `${HOME}/.cache/huggingface/hub`, exists: true },
  ],
  models: [],
  unusable: [],
};

export const ONE_MODEL: AppStatus = {
  ...NO_MODEL,
  models: [
    {
      name: 'Qwen/Qwen3-VL-2B-Instruct',
      path: `${HOME}/.cache/huggingface/hub/models--Qwen--Qwen3-VL-2B-Instruct/snapshots/abc`,
      location: 'huggingFaceCache',
      architecture: 'dense',
    },
  ],
};

export const UNREADABLE: AppError = {
  kind: 'unreadableFolder',
  message: `cannot read the model folder ${HOME}/.cache/huggingface/hub: Permission denied (os error 13)`,
};

export type Scenario = 'no-model' | 'one-model' | 'unreadable';

export function installMockBackend(scenario: Scenario): void {
  clearMocks();
  mockWindows('main');
  mockIPC((cmd) => {
    if (cmd !== 'app_status') throw new Error(`the mock backend has no command ${cmd}`);
    switch (scenario) {
      case 'no-model':
        return NO_MODEL;
      case 'one-model':
        return ONE_MODEL;
      case 'unreadable':
        throw UNREADABLE;
    }
  });
}
