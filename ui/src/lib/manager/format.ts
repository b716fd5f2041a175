// Words and numbers for the model manager: sizes, speeds, times left, what fits, load stages.
import type { CatalogDtype, CatalogRow, LoadProgress } from '../ipc';

/** `4.3 GB`, decimal units like the Hub's pages (and the Rust side's `human_bytes`). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit + 1 < units.length) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatSpeed(bytesPerSec: number): string {
  return `${formatBytes(Math.round(bytesPerSec))}/s`;
}

/** `45 s`, `3 min 05 s`, `2 h 10 min`; an em dash when unknown. */
export function formatEta(secs: number | null | undefined): string {
  if (secs === null || secs === undefined || !Number.isFinite(secs) || secs < 0) return '—';
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Whole percent, never 100 before the last byte. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 0;
  const p = Math.floor((done / total) * 100);
  return done < total ? Math.min(p, 99) : 100;
}

/** `2.1 B` parameters. */
export function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} B` : `${Math.round(n / 1e6)} M`;
}

export type FitWord = 'fits' | 'tight' | 'too large';

/** Whether a catalogue row fits at `dtype`: on the GPU when one is usable, else on the CPU. */
export function fitOf(row: CatalogRow, dtype: CatalogDtype): { word: FitWord; where: 'GPU' | 'CPU' } {
  const fit = row.fits.find((f) => f.dtype === dtype);
  if (!fit) return { word: 'too large', where: 'CPU' };
  if (fit.fitsGpu === true) return { word: 'fits', where: 'GPU' };
  return { word: fit.fitsCpu ? 'fits' : 'too large', where: 'CPU' };
}

const STAGES: Record<string, string> = {
  checking: 'Checking the files and memory',
  unloading: 'Unloading the previous model',
  readingConfig: 'Reading the configuration',
  readingProcessor: 'Reading the tokenizer and processor',
  openingDevice: 'Opening the device',
  mappingWeights: 'Opening the weight files',
  buildingModel: 'Building the vision tower and decoder',
};

export function stageLabel(p: LoadProgress): string {
  return `${STAGES[p.stage] ?? p.stage} (step ${p.step} of ${p.steps})`;
}
