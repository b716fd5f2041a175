// What the bar above the composer says while an answer has not started yet, and the stats line
// under a finished answer.
import type { GenerationStats, ProgressStage } from '../ipc';

export interface Progress {
  stage: ProgressStage;
  done: number;
  total: number;
}

/** Whole percent of `done` out of `total`, clamped to 0–100 (a total of 0 reads as 0 %). */
export function percent(done: number, total: number): number {
  if (!(total > 0) || !Number.isFinite(done)) return 0;
  return Math.min(100, Math.max(0, Math.floor((done / total) * 100)));
}

const READING: Record<Exclude<ProgressStage, 'video'>, string> = {
  image: 'Reading the image',
  videoFrames: 'Reading the video',
  prompt: 'Reading the prompt',
};

/** "Extracting video frames 3 / 20", "Reading the image… 40%". An unknown stage from a newer
 *  backend still reads as progress rather than breaking the bar. */
export function progressLabel(p: Progress): string {
  if (p.stage === 'video') return `Extracting video frames ${p.done} / ${p.total}`;
  const what = READING[p.stage] ?? 'Preparing the answer';
  return `${what}… ${percent(p.done, p.total)}%`;
}

/** Milliseconds as "850 ms" below a second, else seconds to one decimal ("12.3 s"). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  return Math.round(ms) < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** "12 tokens · 9.5 tok/s · first token 3.2 s · prefill 2.9 s". */
export function statsLine(s: GenerationStats): string {
  const parts = [`${s.generatedTokens} tokens`, `${s.decodeTokensPerS.toFixed(1)} tok/s`];
  if (s.firstTokenMs !== undefined) parts.push(`first token ${formatDuration(s.firstTokenMs)}`);
  parts.push(`prefill ${formatDuration(s.prefillMs)}`);
  return parts.join(' · ');
}
