// Times in a video answer (issue 7), so they can become chips that seek the player. Recognised:
//   `<12.5 seconds>` (the tag the model sees per frame group, spec §7.4), `12.5s`, `12.5 sec`,
//   `12.5 seconds`, `00:12`, `1:02:03`, `mm:ss.ff` (`00:23.00`, the cookbook's temporal format),
//   ranges `from 3.0 to 5.5 seconds`, `3.0–5.5s`, `3s - 5s`, `between 3 and 5 seconds`,
//   `00:23.00 - 00:48.00`, and JSON `"time": 1.0` (spatio-temporal grounding; also `timestamp`,
//   `start_time`, `end_time`), minutes (`2 minutes`, `1.5 min`) and minutes with seconds (`1m30s`,
//   `1 min 30 s`, `2 minutes and 5 seconds`).
// Not recognised, on purpose: numbers without a unit, version numbers (`1.2.3`), ratios whose second
// part is not two digits (`16:9`), decades (`1990s`, `'90s`), a bare `m` (metres) without seconds.
// Known false positive: a two-digit ratio or a clock time such as `1:10` or `3:00` reads as a time.
import type { Span, Timestamp } from './types';

const NUM = String.raw`\d+(?:\.\d+)?`;
const UNIT = String.raw`(?:seconds?|secs?|s)(?![A-Za-z])`;
const MINUTES = String.raw`(?:minutes?|mins?)(?![A-Za-z])`;
// h:mm:ss or m:ss / mm:ss / mmm:ss, each with an optional fraction (`.ff`).
const CLOCK = String.raw`(?:\d{1,2}:\d{2}:\d{2}|\d{1,3}:\d{2})(?:\.\d{1,3})?`;
const SEP = String.raw`\s*(?:[-–—~]|\bto\b|\buntil\b)\s*`;
// Not glued to a word, a number, a clock or an apostrophe (`v1.2`, `1.2.3`, `1:2:3`, `'90s`).
const LEFT = String.raw`(?<![\w.:'’])`;
const CLOCK_END = String.raw`(?![\d:]|\.\d)`;

type Kind = 'tag' | 'minutesSeconds' | 'clockRange' | 'secondsRange' | 'json' | 'clock' | 'minutes' | 'seconds';

// Tried in this order; a later pattern never claims text an earlier one matched, so
// `from 3 to 5 seconds` is one range rather than a range plus a stray `5 seconds`.
const PATTERNS: [Kind, RegExp][] = [
  ['tag', new RegExp(String.raw`<\s*(${NUM})\s*seconds?\s*>`, 'gi')],
  ['minutesSeconds', new RegExp(String.raw`${LEFT}(\d+)\s*(?:${MINUTES}|m)\s*(?:and\s+)?(${NUM})\s*${UNIT}`, 'gi')],
  ['clockRange', new RegExp(String.raw`${LEFT}(?:from\s+)?(${CLOCK})${SEP}(${CLOCK})${CLOCK_END}`, 'gi')],
  ['clockRange', new RegExp(String.raw`${LEFT}between\s+(${CLOCK})\s+and\s+(${CLOCK})${CLOCK_END}`, 'gi')],
  ['secondsRange', new RegExp(String.raw`${LEFT}(?:from\s+)?(${NUM})(?:\s*${UNIT})?${SEP}(${NUM})\s*${UNIT}`, 'gi')],
  ['secondsRange', new RegExp(String.raw`${LEFT}between\s+(${NUM})(?:\s*${UNIT})?\s+and\s+(${NUM})\s*${UNIT}`, 'gi')],
  // The delimiter after the number proves it is complete (stream safety without the hold-back).
  ['json', new RegExp(String.raw`["'](?:time|timestamp|start_time|end_time)["']\s*:\s*(${NUM})(?=\s*[,}\]])`, 'gi')],
  ['clock', new RegExp(String.raw`${LEFT}(${CLOCK})${CLOCK_END}`, 'gi')],
  ['minutes', new RegExp(String.raw`${LEFT}(${NUM})\s*${MINUTES}`, 'gi')],
  ['seconds', new RegExp(String.raw`${LEFT}(${NUM})(\s*)(${UNIT})`, 'gi')],
];

/** Seconds of a clock string, or undefined when a field is out of range (`00:75`). */
function clockSeconds(clock: string): number | undefined {
  const parts = clock.split(':').map(Number);
  const seconds = parts[parts.length - 1];
  if (seconds >= 60) return undefined;
  if (parts.length === 3 && parts[1] >= 60) return undefined;
  return parts.reduce((total, part) => total * 60 + part, 0);
}

function isDecade(number: string, space: string, unit: string): boolean {
  const n = Number(number);
  return space === '' && unit === 's' && /^\d+$/.test(number) && n >= 1000 && n % 10 === 0;
}

function interpret(kind: Kind, m: RegExpMatchArray): { start: number; end?: number } | undefined {
  switch (kind) {
    case 'tag':
    case 'json':
      return { start: Number(m[1]) };
    case 'minutesSeconds':
      return Number(m[2]) < 60 ? { start: Number(m[1]) * 60 + Number(m[2]) } : undefined;
    case 'minutes':
      return { start: Number(m[1]) * 60 };
    case 'seconds':
      return isDecade(m[1], m[2], m[3]) ? undefined : { start: Number(m[1]) };
    case 'clock': {
      const start = clockSeconds(m[1]);
      return start === undefined ? undefined : { start };
    }
    case 'clockRange':
    case 'secondsRange': {
      const a = kind === 'clockRange' ? clockSeconds(m[1]) : Number(m[1]);
      const b = kind === 'clockRange' ? clockSeconds(m[2]) : Number(m[2]);
      if (a === undefined || b === undefined) return undefined;
      return { start: Math.min(a, b), end: Math.max(a, b) };
    }
  }
}

// While streaming, a match followed only by this may still grow: `00:12` → `00:12.50`, `1:02` →
// `1:02:03`, `3.0s` → `3.0s – 5.5s`, `3 seconds` → `3 seconds and 5 seconds`, `1 min` → `1 min 30 s`,
// or `5 s` → `5 sec…`.
// No two adjacent parts can match the same characters, so the test is linear even on long tails.
const MAY_GROW =
  /^(?:\.\d*|:\d*)?\s*(?:(?:[-–—~]|t|to|u|un|unt|unti|until|a|an|and)\s*)?(?:[\d:.]+\s*(?:s|se|sec|seco|secon|second|seconds)?)?$/i;
// A tail longer than this holds something that settles the match.
const MAX_GROWTH = 40;

export type AnswerState = 'streaming' | 'complete';

/**
 * Every timestamp in `text`, in text order, each with its span. With `state` = 'streaming' (the
 * answer may still grow), a timestamp that the next characters could still extend or turn into a
 * range is held back until a character arrives that settles it, so a reported timestamp never changes
 * later. With 'complete', everything is reported.
 */
export function findTimestamps(text: string, state: AnswerState): Timestamp[] {
  const claimed: Span[] = [];
  const found: Timestamp[] = [];
  const overlaps = (s: Span) => claimed.some((c) => s.start < c.end && c.start < s.end);

  for (const [kind, pattern] of PATTERNS) {
    for (const m of text.matchAll(pattern)) {
      const span = { start: m.index, end: m.index + m[0].length };
      if (overlaps(span)) continue;
      const times = interpret(kind, m);
      if (times === undefined) continue;
      // Claim the text even when held back, so a shorter pattern cannot report part of it meanwhile.
      claimed.push(span);
      const tail = text.slice(span.end, span.end + MAX_GROWTH + 1);
      if (state === 'streaming' && tail.length <= MAX_GROWTH && MAY_GROW.test(tail)) continue;
      found.push({ ...times, span, text: m[0] });
    }
  }
  return found.sort((a, b) => a.span.start - b.span.start);
}
