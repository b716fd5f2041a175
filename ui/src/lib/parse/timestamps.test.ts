import { describe, expect, it } from 'vitest';
import { findTimestamps } from './timestamps';

/** [text, start, end?] per timestamp, so each table row stays readable. */
function found(text: string) {
  return findTimestamps(text, 'complete').map((t) =>
    t.end === undefined ? [t.text, t.start] : [t.text, t.start, t.end],
  );
}

describe('findTimestamps: single times', () => {
  const table: [string, string, (string | number)[][]][] = [
    ['frame tag', 'The ball appears at <12.5 seconds>.', [['<12.5 seconds>', 12.5]]],
    ['compact seconds', 'It falls at 12.5s and lands at 14s.', [['12.5s', 12.5], ['14s', 14]]],
    ['spelled seconds', 'At 3 seconds, then 7.25 seconds, 2 sec and 1 secs.', [['3 seconds', 3], ['7.25 seconds', 7.25], ['2 sec', 2], ['1 secs', 1]]],
    ['capitalised unit', 'At 4 Seconds.', [['4 Seconds', 4]]],
    ['mm:ss', 'At 00:12 the door opens.', [['00:12', 12]]],
    ['h:mm:ss', 'At 1:02:03 it ends.', [['1:02:03', 3723]]],
    ['mm:ss.ff', 'Starts 00:23.00, peaks 01:05.50.', [['00:23.00', 23], ['01:05.50', 65.5]]],
    ['long m:ss', 'At 125:30 in the lecture.', [['125:30', 7530]]],
    ['json time', '[{"time": 1.0, "bbox_2d": [1, 2, 3, 4], "label": ""}, {"time": 2.5}]', [['"time": 1.0', 1], ['"time": 2.5', 2.5]]],
    ['minutes', 'At 2 minutes and after 1.5 min.', [['2 minutes', 120], ['1.5 min', 90]]],
    ['minutes and seconds', 'At 1m30s, 1 min 5 s and 2 minutes and 10.5 seconds.', [['1m30s', 90], ['1 min 5 s', 65], ['2 minutes and 10.5 seconds', 130.5]]],
    ['json start_time', '{"start_time": 3, "end_time": 5.5}', [['"start_time": 3', 3], ['"end_time": 5.5', 5.5]]],
  ];
  it.each(table)('%s', (_name, text, expected) => {
    expect(found(text)).toStrictEqual(expected);
  });
});

describe('findTimestamps: ranges', () => {
  const table: [string, string, (string | number)[][]][] = [
    ['from … to … seconds', 'The ball rolls from 3.0 to 5.5 seconds.', [['from 3.0 to 5.5 seconds', 3, 5.5]]],
    ['units on both ends', 'From 3 seconds to 5 seconds.', [['From 3 seconds to 5 seconds', 3, 5]]],
    ['en dash, compact', 'Between frames (3.0–5.5s) nothing moves.', [['3.0–5.5s', 3, 5.5]]],
    ['hyphen with spaces', 'At 3s - 5s.', [['3s - 5s', 3, 5]]],
    ['between … and …', 'It is visible between 2 and 4.5 seconds.', [['between 2 and 4.5 seconds', 2, 4.5]]],
    ['cookbook mm:ss.ff range', '{"00:23.00 - 00:48.00": "A man opens the door."}', [['00:23.00 - 00:48.00', 23, 48]]],
    ['clock range with to', 'from 1:00 to 1:30', [['from 1:00 to 1:30', 60, 90]]],
    ['reversed range is ordered', 'from 5 to 3 seconds', [['from 5 to 3 seconds', 3, 5]]],
    ['tags in a sentence', 'between <1.3 seconds> and <2.4 seconds>', [['<1.3 seconds>', 1.3], ['<2.4 seconds>', 2.4]]],
  ];
  it.each(table)('%s', (_name, text, expected) => {
    expect(found(text)).toStrictEqual(expected);
  });
});

describe('findTimestamps: not timestamps', () => {
  it.each([
    ['version numbers', 'Built with version 1.2.3 and v2.0.'],
    ['version number with a unit after', 'Version 1.2.3 s'],
    ['ratios', 'The video is 16:9, the photo 4:3.'],
    ['plain numbers', 'There are 3 cars and 12.5 percent of them are red.'],
    ['a word starting with s', 'I count 5 stars and 2 sheep.'],
    ['decades', 'A 1990s car and a car from the \'90s.'],
    ['seconds out of range', 'Score 12:75.'],
    ['hyphenated adjective', 'A 10-second clip.'],
    ['metres', 'The wall is 3m tall and 2 m wide.'],
    ['minutes with seconds over 59', 'At 1m75s.'],
  ])('%s', (_name, text) => {
    expect(found(text)).toStrictEqual([]);
  });
});

describe('findTimestamps: spans', () => {
  it('slices back to the matched text', () => {
    const text = 'The ball appears at <2.4 seconds> and bounces from 3.0 to 5.5 seconds (00:03–00:05).';
    const times = findTimestamps(text, 'complete');
    expect(times.map((t) => text.slice(t.span.start, t.span.end))).toStrictEqual([
      '<2.4 seconds>',
      'from 3.0 to 5.5 seconds',
      '00:03–00:05',
    ]);
    expect(times.map((t) => t.text)).toStrictEqual(times.map((t) => text.slice(t.span.start, t.span.end)));
  });
});

describe('findTimestamps: streaming', () => {
  const answers = [
    'The ball appears at <2.4 seconds> and bounces from 3.0 to 5.5 seconds.',
    'Events: 00:23.00 - 00:48.00 a man walks; 1:02 to 1:02:30 he sits. At 12.5s, 3s–5s and 00:12.',
    'between 2 seconds and 4 seconds, then at 7 sec, then 1:02:03.',
    'At 1 min 30 s and 2 minutes and 5 seconds, later 3 minutes; 1m5s.',
    '[{"time": 1.0, "bbox_2d": [1, 2, 3, 4]}, {"time": 12.5}]',
  ];

  it.each(answers)('every prefix reports only final timestamps (%#)', (answer) => {
    const final = findTimestamps(answer, 'complete');
    let seen = 0;
    for (let n = 0; n <= answer.length; n++) {
      const partial = findTimestamps(answer.slice(0, n), 'streaming');
      for (const t of partial) expect(final).toContainEqual(t);
      expect(partial.length).toBeGreaterThanOrEqual(seen);
      seen = partial.length;
    }
    // Once a character follows that cannot extend anything, all of them are reported.
    expect(findTimestamps(`${answer} x`, 'streaming')).toStrictEqual(final);
  });

  it.each([
    ['a number that may grow a fraction', 'at 00:12', 'at 00:12.50'],
    ['a clock that may grow hours', 'at 1:02', 'at 1:02:03'],
    ['a time that may become a range', 'from 3.0s to 5', 'from 3.0s to 5.5s'],
    ['a unit still arriving', 'at 5 s', 'at 5 seconds'],
    ['minutes that may get seconds', 'at 1 min 3', 'at 1 min 30 s'],
  ])('holds back %s', (_name, partial, full) => {
    expect(findTimestamps(partial, 'streaming')).toStrictEqual([]);
    expect(findTimestamps(partial, 'complete')).not.toStrictEqual([]);
    expect(findTimestamps(`${full}, then`, 'streaming')).toHaveLength(1);
  });

  it('reports a time once a settling character follows', () => {
    expect(findTimestamps('at 12.5s,', 'streaming').map((t) => t.start)).toStrictEqual([12.5]);
    expect(findTimestamps('at 00:12 the', 'streaming').map((t) => t.start)).toStrictEqual([12]);
  });
});

describe('findTimestamps: cost', () => {
  // The hold-back test once backtracked quadratically on a long run of spaces (2.2 s for this input).
  it('stays fast on a long tail of spaces', () => {
    const t0 = performance.now();
    findTimestamps(`1 min${' '.repeat(20_000)}x`, 'streaming');
    expect(performance.now() - t0).toBeLessThan(300);
  });
});
