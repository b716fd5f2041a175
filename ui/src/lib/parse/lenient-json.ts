// A forgiving JSON reader for model output. Qwen3-VL usually writes valid JSON, but streamed and
// hand-written-looking answers also carry trailing commas, single quotes and bare keys, and the
// text may stop in the middle of a value. `readValue` reads one value at a position and says
// whether it ended cleanly, hit a syntax error, or ran out of text (still streaming).

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type ReadOutcome =
  | { kind: 'value'; value: JsonValue; end: number }
  | { kind: 'error'; at: number }
  /** The text ended before the value did: a later chunk may complete it. */
  | { kind: 'eof' };

// Deeper nesting than this is not grounding output; the limit keeps `[[[[…` from exhausting the stack.
const MAX_DEPTH = 32;

class Stop {
  constructor(
    readonly kind: 'error' | 'eof',
    readonly at: number,
  ) {}
}

/** Reads one JSON-ish value starting at `start` (whitespace allowed before it). Never throws. */
export function readValue(text: string, start: number): ReadOutcome {
  const reader = new Reader(text, start);
  try {
    const value = reader.value(0);
    return { kind: 'value', value, end: reader.pos };
  } catch (e) {
    if (e instanceof Stop) return e.kind === 'eof' ? { kind: 'eof' } : { kind: 'error', at: e.at };
    throw e;
  }
}

const NUMBER = /-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;
const BARE_KEY = /[A-Za-z_$][\w$-]*/y;
const WORD = /true|false|null/y;

class Reader {
  pos: number;
  constructor(
    readonly text: string,
    start: number,
  ) {
    this.pos = start;
  }

  private fail(): never {
    throw new Stop(this.pos >= this.text.length ? 'eof' : 'error', this.pos);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
    if (this.pos >= this.text.length) this.fail();
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) throw new Stop('error', this.pos);
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"' || c === "'") return this.string();
    return this.scalar();
  }

  private object(depth: number): { [key: string]: JsonValue } {
    this.pos++; // '{'
    const out: { [key: string]: JsonValue } = {};
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === '}') {
        this.pos++;
        return out;
      }
      const key = this.key();
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail();
      this.pos++;
      out[key] = this.value(depth + 1);
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c !== '}') this.fail();
    }
  }

  private array(depth: number): JsonValue[] {
    this.pos++; // '['
    const out: JsonValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === ']') {
        this.pos++;
        return out;
      }
      out.push(this.value(depth + 1));
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c !== ']') this.fail();
    }
  }

  private key(): string {
    const c = this.text[this.pos];
    if (c === '"' || c === "'") return this.string();
    BARE_KEY.lastIndex = this.pos;
    const m = BARE_KEY.exec(this.text);
    if (!m) this.fail();
    this.pos += m[0].length;
    return m[0];
  }

  private string(): string {
    const quote = this.text[this.pos];
    let out = '';
    this.pos++;
    while (this.pos < this.text.length) {
      const c = this.text[this.pos];
      if (c === quote) {
        this.pos++;
        return out;
      }
      // A raw newline inside a string means the quote was never closed: not JSON.
      if (c === '\n') this.fail();
      if (c === '\\') {
        const e = this.text[this.pos + 1];
        if (e === undefined) break;
        if (e === 'u') {
          const hex = this.text.slice(this.pos + 2, this.pos + 6);
          if (hex.length < 4) break;
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail();
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 6;
          continue;
        }
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f' };
        out += simple[e] ?? e;
        this.pos += 2;
        continue;
      }
      out += c;
      this.pos++;
    }
    throw new Stop('eof', this.pos);
  }

  private scalar(): JsonValue {
    NUMBER.lastIndex = this.pos;
    const n = NUMBER.exec(this.text);
    if (n) {
      this.pos += n[0].length;
      // "12" at the very end could still grow into "125": not final yet.
      if (this.pos >= this.text.length) this.fail();
      return Number(n[0]);
    }
    WORD.lastIndex = this.pos;
    const w = WORD.exec(this.text);
    if (w) {
      this.pos += w[0].length;
      return w[0] === 'null' ? null : w[0] === 'true';
    }
    // A prefix of true/false/null at the end of the text may still complete.
    const rest = this.text.slice(this.pos);
    if (rest.length < 5 && ['true', 'false', 'null'].some((word) => word.startsWith(rest))) {
      throw new Stop('eof', this.pos);
    }
    this.fail();
  }
}
