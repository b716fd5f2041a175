// The one door to the Rust side. Components call these typed functions and never pass command
// names or raw `invoke` results around. The types mirror src-tauri/src/commands.rs and
// src-tauri/src/model_search.rs (serde camelCase).
import { invoke } from '@tauri-apps/api/core';

export type LocationKind = 'appData' | 'huggingFaceCache';

export interface SearchLocation {
  kind: LocationKind;
  path: string;
  exists: boolean;
}

export interface FoundModel {
  name: string;
  path: string;
  location: LocationKind;
  architecture: 'dense' | 'moe';
}

export interface UnusableModel {
  name: string;
  path: string;
  reason: string;
}

export interface AppStatus {
  version: string;
  searchLocations: SearchLocation[];
  models: FoundModel[];
  unusable: UnusableModel[];
}

/** Errors as the app sends them (src-tauri/src/error.rs), plus `ipc` for failures of the
 *  bridge itself (unknown command, a rejection that is not an app error). */
export type AppErrorKind = 'noDataDir' | 'unreadableFolder' | 'ipc';

export interface AppError {
  kind: AppErrorKind;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: AppError };

const APP_ERROR_KINDS: readonly string[] = ['noDataDir', 'unreadableFolder'];

/** Turns whatever a rejected `invoke` gave into an `AppError`, keeping the app's own kinds. */
export function toAppError(thrown: unknown): AppError {
  if (typeof thrown === 'object' && thrown !== null) {
    const { kind, message } = thrown as Record<string, unknown>;
    if (typeof kind === 'string' && APP_ERROR_KINDS.includes(kind) && typeof message === 'string') {
      return { kind: kind as AppErrorKind, message };
    }
  }
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return { kind: 'ipc', message };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<Result<T>> {
  try {
    return { ok: true, value: await invoke<T>(command, args) };
  } catch (thrown) {
    return { ok: false, error: toAppError(thrown) };
  }
}

/** Where models are looked for and what was found there. */
export function appStatus(): Promise<Result<AppStatus>> {
  return call<AppStatus>('app_status');
}
