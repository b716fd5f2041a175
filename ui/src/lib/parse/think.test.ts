import { describe, expect, it } from 'vitest';
import { splitThink, type ThinkSplit } from './think';

describe('splitThink', () => {
  const table: [string, string, boolean, Omit<ThinkSplit, 'answerOffset'>][] = [
    ['no tags: all answer', 'A cat on a mat.', false, { thinking: null, thinkingOpen: false, answer: 'A cat on a mat.' }],
    [
      'both tags',
      '<think>\nThe user asks about a cat.\n</think>\n\nA cat.',
      false,
      { thinking: 'The user asks about a cat.', thinkingOpen: false, answer: 'A cat.' },
    ],
    [
      'only the closing tag (Thinking template opened it in the prompt)',
      'Looking at the image.\n</think>\n\nA cat.',
      false,
      { thinking: 'Looking at the image.', thinkingOpen: false, answer: 'A cat.' },
    ],
    [
      'open, still thinking',
      '<think>\nLooking at the top left',
      false,
      { thinking: 'Looking at the top left', thinkingOpen: true, answer: '' },
    ],
    [
      'open with a closing tag still arriving',
      '<think>\nDone looking.\n</thi',
      false,
      { thinking: 'Done looking.', thinkingOpen: true, answer: '' },
    ],
    ['an opening tag still arriving', '<thi', false, { thinking: '', thinkingOpen: true, answer: '' }],
    [
      'opened in the prompt, no tag yet',
      'Looking at the image',
      true,
      { thinking: 'Looking at the image', thinkingOpen: true, answer: '' },
    ],
    [
      'opened in the prompt, answer started',
      'Looking.\n</think>\n\n```json\n[]\n```',
      true,
      { thinking: 'Looking.', thinkingOpen: false, answer: '```json\n[]\n```' },
    ],
    ['empty thinking', '<think>\n\n</think>\n\nHi', false, { thinking: '', thinkingOpen: false, answer: 'Hi' }],
    [
      'a later <think> stays in the answer',
      '<think>a</think>Use <think> tags.',
      false,
      { thinking: 'a', thinkingOpen: false, answer: 'Use <think> tags.' },
    ],
    ['"<" alone is not a tag', 'x < y', false, { thinking: null, thinkingOpen: false, answer: 'x < y' }],
  ];

  it.each(table)('%s', (_name, text, openedInPrompt, expected) => {
    const split = splitThink(text, { openedInPrompt });
    expect({ thinking: split.thinking, thinkingOpen: split.thinkingOpen, answer: split.answer }).toStrictEqual(expected);
    // answerOffset points at the answer inside the original text.
    expect(text.slice(split.answerOffset)).toBe(split.answer);
  });
});
