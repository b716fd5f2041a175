// Shared shapes of what the parsers find in a model answer. Re-exported by ./index.ts.
import type { JsonValue } from './lenient-json';

export type { JsonValue };

/** Where a finding sits in the text it was parsed from: UTF-16 offsets, `start` inclusive,
 *  `end` exclusive, so `text.slice(span.start, span.end)` is the matched source. */
export interface Span {
  start: number;
  end: number;
}

export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

/** Which way of writing a box it came from (spec §9): a JSON object with `bbox_2d`, a `qwenvl
 *  html` element's `data-bbox="x1 y1 x2 y2"`, or a `qwenvl markdown` `<!-- Table (x1, y1, x2, y2) -->`. */
export type GroundingSource = 'json' | 'html' | 'comment';

/** A box in Qwen3-VL's relative frame: 0–1000 on both axes whatever the image size, with
 *  x1 <= x2 and y1 <= y2 (the parser swaps reversed corners). */
export interface GroundingBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  label?: string;
  /** Every other key of the object (`text_content`, `type`, `color`, `time`…), as parsed. */
  extras: Record<string, JsonValue>;
  span: Span;
  source: GroundingSource;
}

/** A point in the same 0–1000 frame. */
export interface GroundingPoint {
  x: number;
  y: number;
  label?: string;
  extras: Record<string, JsonValue>;
  span: Span;
}

export type RejectReason =
  /** A coordinate that is not a finite number (a string, null, NaN…). */
  | 'not-numeric'
  /** `bbox_2d` without exactly 4 values, or `point_2d` without exactly 2. */
  | 'wrong-arity'
  /** A coordinate further outside 0–1000 than rounding explains: likely another frame
   *  (absolute pixels, as Qwen2.5-VL used), so drawing it would put it in the wrong place. */
  | 'out-of-range';

/** Something that looked like grounding but was not drawn, and why. */
export interface Rejection {
  span: Span;
  reason: RejectReason;
}

export interface Grounding {
  boxes: GroundingBox[];
  points: GroundingPoint[];
  rejected: Rejection[];
}

/** A time in a (video) answer. `start` (and `end` for a range) in seconds, `end >= start`. */
export interface Timestamp {
  start: number;
  end?: number;
  span: Span;
  /** The matched source text, e.g. `from 3.0 to 5.5 seconds`. */
  text: string;
}
