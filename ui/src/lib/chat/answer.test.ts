// @vitest-environment jsdom
// (jsdom: DOMPurify needs a standard HTML parser, as in render/markdown.test.ts.)
import { describe, expect, it } from 'vitest';
import { viewAnswer } from './answer';

function dom(html: string): DocumentFragment {
  const t = document.createElement('template');
  t.innerHTML = html;
  return t.content;
}

describe('viewAnswer', () => {
  it('finds the boxes of a streaming answer as soon as each object closes', () => {
    const partial = 'Here:\n```json\n[{"bbox_2d": [10, 20, 30, 40], "label": "a"}, {"bbox_2d": [50, 6';
    const v = viewAnswer(partial, undefined, true);
    expect(v.grounding.boxes.map((b) => [b.x1, b.y1, b.x2, b.y2, b.label])).toStrictEqual([[10, 20, 30, 40, 'a']]);
    expect(dom(v.html).querySelector('.grounding-ref[data-index="0"]')?.textContent).toBe('{"bbox_2d": [10, 20, 30, 40], "label": "a"}');
  });

  it('takes reasoning from the thinking field or from think tags, open only while streaming', () => {
    expect(viewAnswer('', 'Looking', true)).toMatchObject({ thinking: 'Looking', thinkingOpen: true });
    expect(viewAnswer('Done.', 'Looked', false)).toMatchObject({ thinking: 'Looked', thinkingOpen: false });
    const tagged = viewAnswer('<think>hmm</think>\n\nThe answer', undefined, false);
    expect([tagged.thinking, dom(tagged.html).textContent?.trim()]).toStrictEqual(['hmm', 'The answer']);
    expect(viewAnswer('Plain', undefined, false).thinking).toBeNull();
  });

  it('parses grounding in the answer only, not in the reasoning', () => {
    const v = viewAnswer('<think>maybe {"bbox_2d": [1, 2, 3, 4]}</think>{"bbox_2d": [5, 6, 7, 8]}', undefined, false);
    expect(v.grounding.boxes.map((b) => b.x1)).toStrictEqual([5]);
  });
});
