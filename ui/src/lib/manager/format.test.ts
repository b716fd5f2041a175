import { describe, expect, it } from 'vitest';
import type { CatalogRow } from '../ipc';
import { fitOf, formatBytes, formatCount, formatEta, formatSpeed, percent, stageLabel } from './format';

describe('manager formatting', () => {
  it('sizes read like the Hub and the Rust side', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(4_256_000_000)).toBe('4.3 GB');
    expect(formatBytes(1_500_000)).toBe('1.5 MB');
    expect(formatSpeed(2_500_000.4)).toBe('2.5 MB/s');
    expect(formatCount(4_437_815_808)).toBe('4.4 B');
    expect(formatCount(12_000_000)).toBe('12 M');
  });

  it('times left are short and honest when unknown', () => {
    expect(formatEta(null)).toBe('—');
    expect(formatEta(Infinity)).toBe('—');
    expect(formatEta(44.6)).toBe('45 s');
    expect(formatEta(185)).toBe('3 min 05 s');
    expect(formatEta(7800)).toBe('2 h 10 min');
  });

  it('percent never claims done early', () => {
    expect(percent(0, 0)).toBe(0);
    expect(percent(999, 1000)).toBe(99);
    expect(percent(1000, 1000)).toBe(100);
    expect(percent(250, 1000)).toBe(25);
  });

  it('fit prefers a usable GPU, else the CPU budget', () => {
    const row = (fitsCpu: boolean, fitsGpu: boolean | null): CatalogRow => ({
      entry: {
        repo: 'Qwen/x', sizeLabel: '4B', flavour: 'instruct', moe: false, parameters: 1, downloadBytes: 2,
        estimated: false, memory: [],
      },
      fits: [{ dtype: 'bf16', fitsCpu, fitsGpu }],
    });
    expect(fitOf(row(true, null), 'bf16')).toEqual({ word: 'fits', where: 'CPU' });
    expect(fitOf(row(false, null), 'bf16')).toEqual({ word: 'too large', where: 'CPU' });
    expect(fitOf(row(false, true), 'bf16')).toEqual({ word: 'fits', where: 'GPU' });
    expect(fitOf(row(true, false), 'bf16')).toEqual({ word: 'fits', where: 'CPU' });
    expect(fitOf(row(true, null), 'f32').word).toBe('too large');
  });

  it('stages have words', () => {
    expect(stageLabel({ stage: 'buildingModel', step: 7, steps: 7 })).toBe('Building the vision tower and decoder (step 7 of 7)');
    expect(stageLabel({ stage: 'newStage', step: 1, steps: 2 })).toBe('newStage (step 1 of 2)');
  });
});
