import { describe, expect, it } from 'vitest';
import { parseGrounding, pointToPixels, toPixels } from './grounding';
import type { Grounding } from './types';

// Answer shapes from the Qwen3-VL cookbooks (spec §9): 2d_grounding, spatial_understanding,
// document_parsing, text spotting, spatio-temporal video grounding.
const COOKBOOK_BOXES = `\`\`\`json
[
	{"bbox_2d": [135, 114, 855, 979], "label": "cake"},
	{"bbox_2d": [662, 0, 998, 271], "label": "cake"}
]
\`\`\``;

/** Boxes as [x1, y1, x2, y2, label] so a table row stays on one line. */
function boxes(g: Grounding) {
  return g.boxes.map((b) => [b.x1, b.y1, b.x2, b.y2, b.label]);
}

function slices(text: string, g: Grounding) {
  return [...g.boxes, ...g.points].map((f) => text.slice(f.span.start, f.span.end));
}

describe('parseGrounding: boxes', () => {
  const table: [string, string, (string | number | undefined)[][]][] = [
    ['cookbook list in a json fence', COOKBOOK_BOXES, [[135, 114, 855, 979, 'cake'], [662, 0, 998, 271, 'cake']]],
    ['single object, no list, no fence', 'Here: {"bbox_2d": [10, 20, 30, 40], "label": "cat"}.', [[10, 20, 30, 40, 'cat']]],
    ['label first', '[{"label": "dog", "bbox_2d": [1, 2, 3, 4]}]', [[1, 2, 3, 4, 'dog']]],
    ['trailing commas', '[{"bbox_2d": [1, 2, 3, 4,], "label": "a",},]', [[1, 2, 3, 4, 'a']]],
    ['no label', '{"bbox_2d": [5, 6, 7, 8]}', [[5, 6, 7, 8, undefined]]],
    ['empty label is no label', '{"time": 1.0, "bbox_2d": [5, 6, 7, 8], "label": ""}', [[5, 6, 7, 8, undefined]]],
    ['numeric label becomes text', '{"bbox_2d": [5, 6, 7, 8], "label": 3}', [[5, 6, 7, 8, '3']]],
    ['single quotes and a bare key', "{bbox_2d: [5, 6, 7, 8], 'label': 'x'}", [[5, 6, 7, 8, 'x']]],
    ['reversed corners are swapped', '{"bbox_2d": [855, 979, 135, 114]}', [[135, 114, 855, 979, undefined]]],
    [
      'two fences with prose between',
      '```json\n[{"bbox_2d": [1,1,2,2], "label": "a"}]\n```\nand\n```json\n{"bbox_2d": [3,3,4,4], "label": "b"}\n```',
      [[1, 1, 2, 2, 'a'], [3, 3, 4, 4, 'b']],
    ],
    ['objects side by side, not in a list', '{"bbox_2d":[1,2,3,4]}, {"bbox_2d":[5,6,7,8]}', [[1, 2, 3, 4, undefined], [5, 6, 7, 8, undefined]]],
    ['nested under another key', '{"objects": [{"bbox_2d": [1, 2, 3, 4], "label": "n"}]}', [[1, 2, 3, 4, 'n']]],
    [
      'a box inside a box',
      '{"bbox_2d": [0, 0, 500, 500], "label": "car", "parts": [{"bbox_2d": [10, 10, 50, 50], "label": "wheel"}]}',
      [[0, 0, 500, 500, 'car'], [10, 10, 50, 50, 'wheel']],
    ],
    ['float coordinates kept', '{"bbox_2d": [1.5, 2.25, 3, 4]}', [[1.5, 2.25, 3, 4, undefined]]],
    ['small overshoot is clamped', '{"bbox_2d": [-3, 0, 1004, 1000]}', [[0, 0, 1000, 1000, undefined]]],
    [
      'escaped quote in a label',
      '{"bbox_2d": [1, 2, 3, 4], "label": "the \\"big\\" one"}',
      [[1, 2, 3, 4, 'the "big" one']],
    ],
    ['prose with braces is ignored', 'The set {a, b} and \\frac{1}{2} have no boxes.', []],
  ];
  it.each(table)('%s', (_name, text, expected) => {
    const g = parseGrounding(text);
    expect(boxes(g)).toStrictEqual(expected);
    expect(g.rejected).toStrictEqual([]);
  });

  it('keeps other keys as extras (text spotting, attributes, time)', () => {
    const text =
      '[{"bbox_2d": [10, 20, 300, 60], "text_content": "EXIT"}, {"bbox_2d": [1, 2, 3, 4], "label": "car", "color": "red", "type": "sedan"}, {"time": 1.0, "bbox_2d": [5, 6, 7, 8], "label": ""}]';
    const g = parseGrounding(text);
    expect(g.boxes.map((b) => b.extras)).toStrictEqual([
      { text_content: 'EXIT' },
      { color: 'red', type: 'sedan' },
      { time: 1 },
    ]);
  });

  it('spans cover exactly each object', () => {
    const text = 'Found two:\n```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"point_2d": [5, 6]}]\n```';
    const g = parseGrounding(text);
    expect(slices(text, g)).toStrictEqual(['{"bbox_2d": [1, 2, 3, 4], "label": "a"}', '{"point_2d": [5, 6]}']);
  });
});

describe('parseGrounding: points', () => {
  it('reads the cookbook point answer', () => {
    const g = parseGrounding('```json\n[\n  {"point_2d": [925, 618], "label": "point_1"}\n]\n```');
    expect(g.points.map((p) => [p.x, p.y, p.label])).toStrictEqual([[925, 618, 'point_1']]);
    expect(g.boxes).toStrictEqual([]);
  });

  it('reads several points and keeps their extras', () => {
    const g = parseGrounding('[{"point_2d": [1, 2], "label": "a", "n": 1}, {"label": "b", "point_2d": [3, 4]}]');
    expect(g.points.map((p) => [p.x, p.y, p.label, p.extras])).toStrictEqual([
      [1, 2, 'a', { n: 1 }],
      [3, 4, 'b', {}],
    ]);
  });
});

describe('parseGrounding: rejected values', () => {
  const table: [string, string, string][] = [
    ['string coordinates', '{"bbox_2d": ["1", 2, 3, 4], "label": "s"}', 'not-numeric'],
    ['null coordinate', '{"point_2d": [null, 2]}', 'not-numeric'],
    ['three values', '{"bbox_2d": [1, 2, 3]}', 'wrong-arity'],
    ['not a list', '{"bbox_2d": "1 2 3 4"}', 'wrong-arity'],
    ['absolute pixels (Qwen2.5-VL frame)', '{"bbox_2d": [100, 200, 1600, 900]}', 'out-of-range'],
    ['far negative', '{"point_2d": [-50, 10]}', 'out-of-range'],
  ];
  it.each(table)('%s', (_name, text, reason) => {
    const g = parseGrounding(text);
    expect(g.boxes).toStrictEqual([]);
    expect(g.points).toStrictEqual([]);
    expect(g.rejected).toStrictEqual([{ span: { start: 0, end: text.length }, reason }]);
  });

  it('drops only the bad object of a list', () => {
    const g = parseGrounding('[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4000]}, {"bbox_2d": [5, 6, 7, 8]}]');
    expect(boxes(g)).toStrictEqual([[1, 2, 3, 4, undefined], [5, 6, 7, 8, undefined]]);
    expect(g.rejected.map((r) => r.reason)).toStrictEqual(['out-of-range']);
  });

  it('survives garbage and deep nesting without throwing', () => {
    for (const text of ['{{{{{{', '['.repeat(10_000) + '{"bbox_2d": [1,2,3,4]}', '{"bbox_2d": [1,2,3,4]', '\u0000{"', '}{][']) {
      expect(() => parseGrounding(text)).not.toThrow();
    }
    expect(boxes(parseGrounding('['.repeat(10_000) + '{"bbox_2d": [1,2,3,4]}'))).toStrictEqual([[1, 2, 3, 4, undefined]]);
  });
});

describe('parseGrounding: document parsing forms', () => {
  it('reads qwenvl html data-bbox attributes, label from class or tag', () => {
    const text =
      '```html\n<html><body>\n<h1 data-bbox="62 71 931 103">Annual Report</h1>\n<div class="image" data-bbox="102 246 883 614"></div>\n<p data-bbox="70 640 930 700">Text</p>\n</body></html>\n```';
    const g = parseGrounding(text);
    expect(boxes(g)).toStrictEqual([
      [62, 71, 931, 103, 'h1'],
      [102, 246, 883, 614, 'image'],
      [70, 640, 930, 700, 'p'],
    ]);
    expect(g.boxes.map((b) => [b.source, b.extras])).toStrictEqual([
      ['html', { tag: 'h1' }],
      ['html', { tag: 'div', class: 'image' }],
      ['html', { tag: 'p' }],
    ]);
    expect(slices(text, g)[0]).toBe('<h1 data-bbox="62 71 931 103">');
  });

  it('reads qwenvl markdown coordinate comments', () => {
    const text = '# Title\n<!-- Image (102, 246, 883, 614) -->\n\n<!-- Table (70, 640, 930, 900) -->\n\\begin{tabular}{cc} a & b \\end{tabular}';
    const g = parseGrounding(text);
    expect(boxes(g)).toStrictEqual([[102, 246, 883, 614, 'Image'], [70, 640, 930, 900, 'Table']]);
    expect(g.boxes.every((b) => b.source === 'comment')).toBe(true);
  });

  // The comment pattern once backtracked quadratically on spaces (0.5 s for this input).
  it('stays fast on a comment opener followed by many spaces', () => {
    const t0 = performance.now();
    parseGrounding(`<!-- a${' '.repeat(20_000)}x`);
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('reads a multi-word comment label', () => {
    expect(boxes(parseGrounding('<!-- Chemical Formula (1, 2, 3, 4) -->'))).toStrictEqual([[1, 2, 3, 4, 'Chemical Formula']]);
  });

  it('rejects a data-bbox with words in it', () => {
    const g = parseGrounding('<p data-bbox="1 2 three 4">x</p>');
    expect(g.boxes).toStrictEqual([]);
    expect(g.rejected.map((r) => r.reason)).toStrictEqual(['not-numeric']);
  });
});

describe('parseGrounding: streaming', () => {
  const answers = [
    COOKBOOK_BOXES,
    'Sure.\n```json\n[\n  {"point_2d": [925, 618], "label": "point_1"},\n  {"point_2d": [12, 7], "label": "p2"}\n]\n```\nDone.',
    '<h1 data-bbox="62 71 931 103">A</h1><!-- Table (70, 640, 930, 900) -->',
    '{"bbox_2d": [0, 0, 500, 500], "label": "car", "parts": [{"bbox_2d": [10, 10, 50, 50], "label": "wheel"}]}',
    '[{"label": "a", "bbox_2d": [10, 20, 30, 40], "text_content": "x,y}"}, {"bbox_2d": [1, 2, 3, 4000]}]',
  ];

  it.each(answers)('every prefix reports only final findings, unchanged (%#)', (answer) => {
    const final = parseGrounding(answer);
    const finalBoxes = JSON.stringify(final.boxes);
    let seen = 0;
    for (let n = 0; n <= answer.length; n++) {
      const g = parseGrounding(answer.slice(0, n));
      for (const b of g.boxes) expect(final.boxes).toContainEqual(b);
      for (const p of g.points) expect(final.points).toContainEqual(p);
      for (const r of g.rejected) expect(final.rejected).toContainEqual(r);
      const count = g.boxes.length + g.points.length;
      expect(count).toBeGreaterThanOrEqual(seen);
      seen = count;
    }
    expect(JSON.stringify(parseGrounding(answer).boxes)).toBe(finalBoxes);
  });

  it('returns the complete objects of a list that is still streaming', () => {
    const g = parseGrounding('```json\n[\n  {"bbox_2d": [135, 114, 855, 979], "label": "cake"},\n  {"bbox_2d": [662, 0, 9');
    expect(boxes(g)).toStrictEqual([[135, 114, 855, 979, 'cake']]);
  });

  it('does not report a number that may still grow', () => {
    expect(parseGrounding('{"point_2d": [925, 61').points).toStrictEqual([]);
    expect(parseGrounding('{"point_2d": [925, 61]').points).toStrictEqual([]);
    expect(parseGrounding('{"point_2d": [925, 61]}').points.map((p) => p.y)).toStrictEqual([61]);
  });
});

describe('toPixels', () => {
  it('maps 0–1000 to pixels as x/1000·W, y/1000·H', () => {
    expect(toPixels({ x1: 135, y1: 114, x2: 855, y2: 979 }, 2000, 500)).toStrictEqual({
      ok: true,
      value: { x1: 270, y1: 57, x2: 1710, y2: 489.5 },
    });
    expect(toPixels({ x1: 0, y1: 0, x2: 1000, y2: 1000 }, 641, 359)).toStrictEqual({
      ok: true,
      value: { x1: 0, y1: 0, x2: 641, y2: 359 },
    });
    expect(pointToPixels({ x: 925, y: 618 }, 1000, 3000)).toStrictEqual({ ok: true, value: { x: 925, y: 1854 } });
  });

  it.each([
    [0, 100],
    [100, -1],
    [Number.NaN, 100],
    [100, Number.POSITIVE_INFINITY],
  ])('refuses an image of %s×%s', (w, h) => {
    expect(toPixels({ x1: 1, y1: 2, x2: 3, y2: 4 }, w, h)).toStrictEqual({ ok: false, error: 'bad-image-size' });
    expect(pointToPixels({ x: 1, y: 2 }, w, h)).toStrictEqual({ ok: false, error: 'bad-image-size' });
  });
});
