import { describe, expect, it } from 'vitest';
import { formatBytes, imageFor } from './format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KB'],
    [5 * 1024 * 1024, '5.0 MB'],
    [-1, '?'],
  ])('%d -> %s', (n, s) => expect(formatBytes(n)).toBe(s));
});

describe('imageFor', () => {
  const img = (hash: string) => ({ kind: 'image', hash });
  const messages = [
    { role: 'user', attachments: [img('a'), img('b'), { kind: 'video', hash: 'v' }] },
    { role: 'assistant', attachments: [] },
    { role: 'user', attachments: [] },
    { role: 'assistant', attachments: [] },
  ];

  it('takes the last image of the preceding user message', () => {
    expect(imageFor(messages, 1)).toStrictEqual(img('b'));
  });

  it('does not reach past the preceding user message', () => {
    expect(imageFor(messages, 3)).toBeUndefined();
  });
});
