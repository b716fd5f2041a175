import { describe, expect, it } from 'vitest';
import { formatDuration, percent, progressLabel, statsLine } from './progress';

describe('progress labels', () => {
  it('counts frames for extraction and percent for the prefill stages', () => {
    expect(progressLabel({ stage: 'video', done: 3, total: 20 })).toBe('Extracting video frames 3 / 20');
    expect(progressLabel({ stage: 'image', done: 10, total: 24 })).toBe('Reading the image… 41%');
    expect(progressLabel({ stage: 'videoFrames', done: 24, total: 24 })).toBe('Reading the video… 100%');
    expect(progressLabel({ stage: 'prompt', done: 1, total: 28 })).toBe('Reading the prompt… 3%');
  });

  it('never shows a nonsense percent', () => {
    expect(percent(5, 0)).toBe(0);
    expect(percent(7, 4)).toBe(100);
    expect(percent(-1, 4)).toBe(0);
    expect(percent(Number.NaN, 4)).toBe(0);
    expect(progressLabel({ stage: 'later' as never, done: 1, total: 2 })).toBe('Preparing the answer… 50%');
  });
});

describe('stats line', () => {
  const stats = { promptTokens: 900, generatedTokens: 12, prefillMs: 2870, decodeTokensPerS: 9.54, finishReason: 'eos' as const };

  it('shows the time to first token when the answer has one', () => {
    expect(statsLine({ ...stats, firstTokenMs: 3240 })).toBe('12 tokens · 9.5 tok/s · first token 3.2 s · prefill 2.9 s');
    // Answers stored before it was measured.
    expect(statsLine(stats)).toBe('12 tokens · 9.5 tok/s · prefill 2.9 s');
  });

  it('formats durations in ms below a second', () => {
    expect(formatDuration(31.4)).toBe('31 ms');
    expect(formatDuration(999.6)).toBe('1.0 s');
    expect(formatDuration(1000)).toBe('1.0 s');
    expect(formatDuration(-1)).toBe('?');
  });
});
