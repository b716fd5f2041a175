// One download as the manager shows it, folded from the DownloadEvents the back end streams and
// the outcome its command resolves with. Pure functions, so the folding is unit-tested.
import type { AppError, DownloadEvent, DownloadOutcome } from '../ipc';

export type DownloadStatus = 'starting' | 'downloading' | 'pausing' | 'paused' | 'cancelled' | 'complete' | 'failed';

export interface FileView {
  name: string;
  size: number;
  done: number;
}

export interface DownloadView {
  repo: string;
  status: DownloadStatus;
  files: FileView[];
  /** The file being transferred now. */
  current: string | null;
  totalDone: number;
  totalBytes: number;
  bytesPerSec: number;
  etaSecs: number | null;
  error: AppError | null;
  snapshot: string | null;
}

export function startingView(repo: string, keptBytes = 0): DownloadView {
  return {
    repo,
    status: 'starting',
    files: [],
    current: null,
    totalDone: keptBytes,
    totalBytes: 0,
    bytesPerSec: 0,
    etaSecs: null,
    error: null,
    snapshot: null,
  };
}

export function applyEvent(view: DownloadView, e: DownloadEvent): DownloadView {
  switch (e.event) {
    case 'started':
      return {
        ...view,
        status: view.status === 'pausing' ? 'pausing' : 'downloading',
        files: e.files.map((f) => ({ name: f.name, size: f.size, done: 0 })),
        totalDone: e.alreadyDone,
        totalBytes: e.totalBytes,
      };
    case 'progress':
      return {
        ...view,
        files: view.files.map((f) => (f.name === e.file ? { ...f, done: e.fileDone } : f)),
        current: e.file,
        totalDone: e.totalDone,
        totalBytes: e.totalBytes,
        bytesPerSec: e.bytesPerSec,
        etaSecs: e.etaSecs,
      };
    case 'fileDone':
      return {
        ...view,
        files: view.files.map((f) => (f.name === e.file ? { ...f, done: f.size } : f)),
        current: view.current === e.file ? null : view.current,
      };
    case 'finished':
      return { ...view, snapshot: e.snapshot };
  }
}

/** The command's answer: complete, stopped (paused, or cancelled when `cancelled`), or an error. */
export function settle(
  view: DownloadView,
  result: { ok: true; value: DownloadOutcome } | { ok: false; error: AppError },
  cancelled: boolean,
): DownloadView {
  if (!result.ok) return { ...view, status: 'failed', error: result.error, bytesPerSec: 0, etaSecs: null };
  if (result.value.status === 'complete') {
    return { ...view, status: 'complete', snapshot: result.value.snapshot, totalDone: view.totalBytes, etaSecs: 0 };
  }
  if (cancelled) return { ...view, status: 'cancelled', totalDone: 0, bytesPerSec: 0, etaSecs: null };
  return { ...view, status: 'paused', totalDone: result.value.keptBytes, bytesPerSec: 0, etaSecs: null };
}

export function isActive(view: DownloadView | undefined): boolean {
  return view !== undefined && (view.status === 'starting' || view.status === 'downloading' || view.status === 'pausing');
}
