import { describe, expect, it } from 'vitest';
import { clampTime, frameKey, markPositions, nativelyPlayable, timeAt } from './timeline';

describe('timeline geometry', () => {
  it('places frame marks as percentages of the duration', () => {
    expect(markPositions([0, 2.5, 5, 10], 10)).toStrictEqual([0, 25, 50, 100]);
  });
  it('clamps marks outside the video and survives an unknown duration', () => {
    expect(markPositions([-1, 12], 10)).toStrictEqual([0, 100]);
    expect(markPositions([1, 2], 0)).toStrictEqual([0, 0]);
  });
  it('maps a pointer position back to a time, clamped to the track', () => {
    expect(timeAt(150, 100, 200, 8)).toBe(2);
    expect(timeAt(50, 100, 200, 8)).toBe(0);
    expect(timeAt(400, 100, 200, 8)).toBe(8);
    expect(timeAt(150, 100, 0, 8)).toBe(0);
  });
  it('clamps seeks into the video', () => {
    expect(clampTime(3, 10)).toBe(3);
    expect(clampTime(12, 10)).toBe(10);
    expect(clampTime(-2, 10)).toBe(0);
    expect(clampTime(Number.NaN, 10)).toBe(0);
    expect(clampTime(12, 0)).toBe(12);
  });
  it('rounds to the frame cache step', () => {
    expect(frameKey(2.44)).toBeCloseTo(2.4, 9);
    expect(frameKey(2.46)).toBeCloseTo(2.5, 9);
  });
});

describe('nativelyPlayable', () => {
  it('plays mp4 and webm in the webview, scrubs the rest', () => {
    expect(nativelyPlayable('video/mp4')).toBe(true);
    expect(nativelyPlayable('video/webm')).toBe(true);
    expect(nativelyPlayable('video/x-matroska')).toBe(false);
    expect(nativelyPlayable('video/x-msvideo')).toBe(false);
    expect(nativelyPlayable('video/quicktime')).toBe(false);
  });
});
