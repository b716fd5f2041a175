import { describe, expect, it } from 'vitest';
import { formatClock, parseClock } from './time';

describe('formatClock', () => {
  it.each([
    [0, 0, '0:00'],
    [5, 0, '0:05'],
    [65, 0, '1:05'],
    [65.25, 1, '1:05.3'],
    [3723, 0, '1:02:03'],
    [59.96, 1, '1:00.0'],
    [12.5, 1, '0:12.5'],
  ])('%d s, %d decimals → %s', (s, d, text) => {
    expect(formatClock(s, d)).toBe(text);
  });
  it('shows a placeholder for unknown times', () => {
    expect(formatClock(Number.NaN)).toBe('–:––');
    expect(formatClock(-1)).toBe('–:––');
  });
});

describe('parseClock', () => {
  it.each([
    ['80', 80],
    ['12.5', 12.5],
    ['1:20', 80],
    ['01:20', 80],
    ['2:05.5', 125.5],
    ['1:02:03', 3723],
    [' 0:07 ', 7],
  ])('%s → %d', (text, s) => {
    expect(parseClock(text)).toBe(s);
  });
  it.each(['', 'abc', '1:75', '1:60:00', '-3', '1:2:3:4', '1::2', '1:20s'])('%j is not a time', (text) => {
    expect(parseClock(text)).toBeUndefined();
  });
  it('round-trips with formatClock', () => {
    for (const s of [0, 9.5, 61.2, 3599.9, 7322.4]) expect(parseClock(formatClock(s, 1))).toBeCloseTo(s, 6);
  });
});
