// @vitest-environment happy-dom
// The chat state against the mocked backend: events arrive through a real Channel.
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CAT, GROUNDING_ANSWER, MOCK_TEXT_LAYERS, MOCK_VISION_BLOCKS, ONE_MODEL, installMockBackend } from '../../../e2e/mock-backend';
import { createConversation, loadModel } from '../ipc';
import { ChatState } from './chat.svelte';
import { ComposerState } from './composer.svelte';
import { SettingsState } from './settings.svelte';

afterEach(() => clearMocks());

async function started(tokenMs = 1) {
  installMockBackend('one-model', { tokenMs });
  await loadModel(ONE_MODEL.models[0].path);
  const c = await createConversation('t');
  if (!c.ok) throw new Error('no conversation');
  return c.value.id;
}

describe('ChatState', () => {
  it('streams an answer into the assistant message and completes it', async () => {
    const id = await started();
    const chat = new ChatState();
    const finished = vi.fn();
    chat.onFinished = finished;
    await chat.send(id, 'Where is the cat?', [CAT], {});
    expect(chat.generating).toBe(true);
    expect(chat.messages.map((m) => m.role)).toStrictEqual(['user', 'assistant']);
    await vi.waitFor(() => expect(chat.messages[1].status).toBe('complete'));
    expect(chat.messages[1].content).toBe(GROUNDING_ANSWER);
    expect(chat.messages[1].id).toBeGreaterThan(chat.messages[0].id);
    expect(chat.messages[1].stats?.finishReason).toBe('eos');
    expect(chat.generating).toBe(false);
    expect(finished).toHaveBeenCalledOnce();
  });

  it('shows the image being read, then the prompt, until the first token; the answer keeps its time to first token', async () => {
    const id = await started();
    const chat = new ChatState();
    const seen: string[] = [];
    const stop = $effect.root(() => {
      $effect(() => {
        const p = chat.progress;
        if (p) seen.push(`${p.stage} ${p.done}/${p.total} ${chat.messages[1]?.content.length ?? 0}`);
      });
    });
    await chat.send(id, 'Where is the cat?', [CAT], {});
    await vi.waitFor(() => expect(chat.messages[1].status).toBe('complete'));
    stop();
    expect(chat.progress).toBeNull();
    // Every step, in order, while the answer is still empty.
    const want = [
      ...Array.from({ length: MOCK_VISION_BLOCKS }, (_, k) => `image ${k + 1}/${MOCK_VISION_BLOCKS} 0`),
      ...Array.from({ length: MOCK_TEXT_LAYERS }, (_, k) => `prompt ${k + 1}/${MOCK_TEXT_LAYERS} 0`),
    ];
    expect(seen).toStrictEqual(want);
    expect(chat.messages[1].content).toBe(GROUNDING_ANSWER);
    expect(chat.messages[1].stats?.firstTokenMs).toBeGreaterThan(0);
  });

  it('stop marks the answer interrupted with its partial text', async () => {
    const id = await started(20);
    const chat = new ChatState();
    await chat.send(id, 'Where is the cat?', [], {});
    await vi.waitFor(() => expect(chat.messages[1].content.length).toBeGreaterThan(4));
    await chat.stop();
    await vi.waitFor(() => expect(chat.messages[1].status).toBe('interrupted'));
    expect(GROUNDING_ANSWER.startsWith(chat.messages[1].content)).toBe(true);
    expect(chat.messages[1].content.length).toBeLessThan(GROUNDING_ANSWER.length);
  });

  it('stays busy while its answer streams in a conversation the user left', async () => {
    const id = await started(10);
    const chat = new ChatState();
    await chat.send(id, 'Where is the cat?', [], {});
    await chat.open(null);
    expect(chat.generating).toBe(true);
    expect(chat.messages).toStrictEqual([]);
    await vi.waitFor(() => expect(chat.generating).toBe(false));
    expect(chat.messages).toStrictEqual([]);
  });

  it('shows a refused send as an error on the answer', async () => {
    installMockBackend('one-model');
    const chat = new ChatState();
    await chat.send(1, 'hi', [], {});
    expect(chat.error?.kind).toBe('noModelLoaded');
    expect(chat.messages[1].status).toBe('error');
    expect(chat.generating).toBe(false);
  });

  it('regenerate replaces the last answer; reopening loads the stored messages', async () => {
    const id = await started();
    const chat = new ChatState();
    await chat.send(id, 'Where is the cat?', [], {});
    await vi.waitFor(() => expect(chat.generating).toBe(false));
    const first = chat.messages[1].id;
    await chat.regenerate({});
    await vi.waitFor(() => expect(chat.messages[1].status).toBe('complete'));
    expect(chat.messages).toHaveLength(2);
    expect(chat.messages[1].id).not.toBe(first);
    const again = new ChatState();
    await again.open(id);
    expect(again.messages.map((m) => [m.role, m.content])).toStrictEqual([
      ['user', 'Where is the cat?'],
      ['assistant', GROUNDING_ANSWER],
    ]);
  });
});

describe('ComposerState', () => {
  it('adds an attachment once and removes it', async () => {
    installMockBackend('one-model');
    const composer = new ComposerState();
    await composer.importPath('/a/cat.png');
    await composer.importPath('/b/cat.png');
    expect(composer.attachments.map((a) => a.hash)).toStrictEqual([CAT.hash]);
    composer.remove(CAT.hash);
    expect(composer.attachments).toStrictEqual([]);
  });

  it('keeps the error of a refused file', async () => {
    installMockBackend('one-model');
    const composer = new ComposerState();
    await composer.importPath('/a/notes.txt');
    expect(composer.error?.kind).toBe('unsupportedFile');
    expect(composer.importing).toBe(0);
  });
});

describe('SettingsState', () => {
  it('sends only the fields that are set', () => {
    const s = new SettingsState();
    expect(s.toSettings()).toStrictEqual({ thinking: false, maxNewTokens: 1024 });
    s.temperature = 0.7;
    s.systemPrompt = '  ';
    s.maxPixels = 1_003_520;
    s.thinking = true;
    expect(s.toSettings()).toStrictEqual({ thinking: true, temperature: 0.7, maxNewTokens: 1024, maxPixels: 1_003_520 });
  });
});
