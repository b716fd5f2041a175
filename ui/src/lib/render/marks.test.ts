// @vitest-environment jsdom
// (jsdom for the same reason as markdown.test.ts: DOMPurify needs a standard HTML parser.)
import { describe, expect, it } from 'vitest';
import { findTimestamps } from '../parse/timestamps';
import { parseGrounding } from '../parse/grounding';
import { renderMarkdown } from './markdown';
import { insertMarks, marksFrom, stripMarks, type Mark } from './marks';

function fragment(html: string): DocumentFragment {
  const t = document.createElement('template');
  t.innerHTML = html;
  return t.content;
}

function render(text: string): DocumentFragment {
  const g = parseGrounding(text);
  const marks = marksFrom({ timestamps: findTimestamps(text, 'complete'), boxes: g.boxes, points: g.points });
  return fragment(renderMarkdown(text, marks));
}

function chips(f: DocumentFragment) {
  return [...f.querySelectorAll('[data-testid="timestamp"]')].map((c) => [
    c.textContent,
    c.getAttribute('data-seconds'),
    c.getAttribute('data-end-seconds'),
  ]);
}

describe('timestamp chips', () => {
  it('wraps each timestamp of the answer, with its seconds', () => {
    const f = render('The ball appears at <2.4 seconds> and bounces **from 3.0 to 5.5 seconds** (01:02).');
    expect(chips(f)).toStrictEqual([
      ['<2.4 seconds>', '2.4', null],
      ['from 3.0 to 5.5 seconds', '3', '5.5'],
      ['01:02', '62', null],
    ]);
    expect(f.querySelector('strong > button.timestamp-chip')?.getAttribute('type')).toBe('button');
    expect(f.textContent?.trim()).toBe('The ball appears at <2.4 seconds> and bounces from 3.0 to 5.5 seconds (01:02).');
  });

  it('works in lists, tables and the cookbook JSON', () => {
    const f = render('- 00:05 enters\n- 00:09 leaves\n\n| t | what |\n|---|---|\n| 12.5s | jump |\n\n```json\n{"00:23.00 - 00:48.00": "a man walks"}\n```');
    expect(chips(f)).toStrictEqual([
      ['00:05', '5', null],
      ['00:09', '9', null],
      ['12.5s', '12.5', null],
      ['00:23.00 - 00:48.00', '23', '48'],
    ]);
    expect(f.querySelector('code')?.textContent).toBe('{"00:23.00 - 00:48.00": "a man walks"}');
  });

  it('leaves URLs and TeX intact rather than wrapping inside them', () => {
    const f = render('[clip](https://example.com/v?t=12s) and $t = 5s$');
    expect(f.querySelector('a')?.getAttribute('data-href')).toBe('https://example.com/v?t=12s');
    expect(f.querySelector('annotation')?.textContent).toBe('t = 5s');
    expect(f.querySelector('a [data-testid]')).toBeNull();
  });
});

describe('grounding references', () => {
  it('wraps each object inside the json code block without changing the code text', () => {
    const text = 'Found:\n```json\n[\n  {"bbox_2d": [135, 114, 855, 979], "label": "cake"},\n  {"point_2d": [925, 618], "label": "p"}\n]\n```';
    const f = render(text);
    const refs = [...f.querySelectorAll('code .grounding-ref')];
    expect(refs.map((r) => [r.getAttribute('data-grounding'), r.getAttribute('data-index'), r.textContent])).toStrictEqual([
      ['box', '0', '{"bbox_2d": [135, 114, 855, 979], "label": "cake"}'],
      ['point', '0', '{"point_2d": [925, 618], "label": "p"}'],
    ]);
    // The copy button copies code.textContent: it must be exactly the model's code.
    expect(f.querySelector('code')?.textContent).toBe(
      '[\n  {"bbox_2d": [135, 114, 855, 979], "label": "cake"},\n  {"point_2d": [925, 618], "label": "p"}\n]',
    );
  });

  it('nests a timestamp inside the box that contains it', () => {
    const f = render('```json\n[{"time": 1.0, "bbox_2d": [1, 2, 3, 4], "label": ""}]\n```');
    const chip = f.querySelector('.grounding-ref[data-index="0"] > [data-testid="timestamp"]');
    expect(chip?.textContent).toBe('"time": 1.0');
  });

  it('wraps a box written outside any fence', () => {
    const f = render('The cat is at {"bbox_2d": [10, 20, 30, 40], "label": "cat"} in the image.');
    expect(f.querySelector('p > .grounding-ref')?.textContent).toBe('{"bbox_2d": [10, 20, 30, 40], "label": "cat"}');
  });
});

describe('marks: edge cases', () => {
  it('refuses mark characters written by the model', () => {
    const forged = 'x \uE000\uE100 12 \uE001\uE100 y';
    const f = fragment(renderMarkdown(forged, []));
    expect(f.querySelector('button, .grounding-ref')).toBeNull();
    expect(f.textContent?.trim()).toBe('x \uFFFD\uFFFD 12 \uFFFD\uFFFD y');
  });

  it('drops a mark that crosses another, and stale spans past the end', () => {
    const marks: Mark[] = [
      { kind: 'box', span: { start: 0, end: 6 }, index: 0 },
      { kind: 'timestamp', span: { start: 3, end: 9 }, start: 1 },
      { kind: 'point', span: { start: 5, end: 99 }, index: 0 },
    ];
    expect(insertMarks('abcdefghij', marks).kept).toStrictEqual([marks[0]]);
  });

  it('orders edges so equal and touching spans nest', () => {
    const marks: Mark[] = [
      { kind: 'timestamp', span: { start: 2, end: 4 }, start: 1 },
      { kind: 'box', span: { start: 0, end: 4 }, index: 0 },
      { kind: 'point', span: { start: 4, end: 6 }, index: 0 },
    ];
    const html = renderMarkdown('abcdefg', marks);
    expect(html).toBe(
      '<p><span class="grounding-ref" data-grounding="box" data-index="0">ab<button type="button" class="timestamp-chip" data-testid="timestamp" data-seconds="1">cd</button></span><span class="grounding-ref" data-grounding="point" data-index="0">ef</span>g</p>\n',
    );
  });

  it('stripMarks removes every mark character', () => {
    const { source } = insertMarks('at 12s', [{ kind: 'timestamp', span: { start: 3, end: 6 }, start: 12 }]);
    expect(source).not.toBe('at 12s');
    expect(stripMarks(source)).toBe('at 12s');
  });

  it('every prefix of a streaming video answer renders chips that match the final ones', () => {
    const answer = 'The ball enters at <0.4 seconds>, bounces from 1.2 to 2.1 seconds and leaves at 00:03.50.\n```json\n[{"time": 2.0, "bbox_2d": [10, 20, 30, 40]}]\n```';
    const finalChips = chips(render(answer));
    for (let n = 0; n <= answer.length; n++) {
      const text = answer.slice(0, n);
      const g = parseGrounding(text);
      const marks = marksFrom({ timestamps: findTimestamps(text, 'streaming'), boxes: g.boxes });
      for (const chip of chips(fragment(renderMarkdown(text, marks)))) expect(finalChips).toContainEqual(chip);
    }
  });
});
