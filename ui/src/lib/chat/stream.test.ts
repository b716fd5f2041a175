import { describe, expect, it } from 'vitest';
import type { GenerationEvent, GenerationStats, StoredMessage } from '../ipc';
import { applyEvent, messageError, pendingAnswer } from './stream';

const stats = (finishReason: GenerationStats['finishReason']): GenerationStats => ({
  promptTokens: 20,
  generatedTokens: 3,
  prefillMs: 12,
  decodeTokensPerS: 30,
  finishReason,
});

const run = (events: GenerationEvent[], from: StoredMessage = pendingAnswer()) => events.reduce(applyEvent, from);
const token = (text: string, thinking = ''): GenerationEvent => ({ type: 'token', text, thinking, elapsedMs: 1 });

describe('applyEvent', () => {
  it('takes the id, appends text and thinking, completes on eos', () => {
    const m = run([
      { type: 'started', messageId: 7, promptTokens: 20 },
      token('', 'Look at '),
      token('', 'the cat.'),
      token('{"bbox_2d": [1,'),
      token(' 2, 3, 4]}'),
      { type: 'done', stats: stats('eos') },
    ]);
    expect(m).toStrictEqual({
      id: 7,
      role: 'assistant',
      content: '{"bbox_2d": [1, 2, 3, 4]}',
      thinking: 'Look at the cat.',
      status: 'complete',
      attachments: [],
      stats: stats('eos'),
    });
  });

  it('marks a cancelled answer interrupted and keeps the partial text', () => {
    const m = run([{ type: 'started', messageId: 1, promptTokens: 1 }, token('The '), token('cat'), { type: 'done', stats: stats('cancelled') }]);
    expect([m.status, m.content]).toStrictEqual(['interrupted', 'The cat']);
  });

  it('keeps the partial text and the error on an error', () => {
    const m = run([token('Half'), { type: 'error', error: { kind: 'outOfMemory', message: 'no memory' } }]);
    expect([m.status, m.content, messageError(m)]).toStrictEqual(['error', 'Half', { kind: 'outOfMemory', message: 'no memory' }]);
  });

  it('ignores events once the message stopped streaming', () => {
    const m = run([token('A'), { type: 'done', stats: stats('length') }, token('B'), { type: 'error', error: { kind: 'x', message: 'y' } }]);
    expect([m.status, m.content]).toStrictEqual(['complete', 'A']);
  });

  it('adds no thinking field when the model does not think', () => {
    expect('thinking' in run([token('hi')])).toBe(false);
  });
});
