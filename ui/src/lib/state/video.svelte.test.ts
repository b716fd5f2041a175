// @vitest-environment happy-dom
// Video state: which player "here" means, composer refs with video options, and the extraction
// progress a send shows (mocked backend, events through a real Channel).
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CAT, CLIP, ONE_MODEL, VIDEO_ANSWER, installMockBackend } from '../../../e2e/mock-backend';
import { createConversation, loadModel } from '../ipc';
import { ChatState } from './chat.svelte';
import { ComposerState } from './composer.svelte';
import { PlayersState } from './players.svelte';

afterEach(() => clearMocks());

describe('PlayersState', () => {
  it('"here" is the last player the user touched, at its position to a tenth of a second', () => {
    const players = new PlayersState();
    expect(players.here).toBeNull();
    players.report('0:a', CLIP, 1.26);
    players.report('2:a', { ...CLIP, fileName: 'again.mkv' }, 7.04);
    expect(players.here).toStrictEqual({ hash: CLIP.hash, seconds: 7, attachment: { ...CLIP, fileName: 'again.mkv' } });
    // Playback moving a player the user did not touch last does not steal "here"...
    players.report('0:a', CLIP, 2, false);
    expect(players.here?.attachment.fileName).toBe('again.mkv');
    // ...but the position of the touched one follows playback.
    players.report('2:a', CLIP, 8.55, false);
    expect(players.here?.seconds).toBe(8.6);
  });

  it('numbers seek requests so the same chip twice seeks twice', () => {
    const players = new PlayersState();
    players.seek('0:a', 3.5);
    const first = players.request;
    players.seek('0:a', 3.5);
    expect(players.request).not.toStrictEqual(first);
    expect(players.request).toMatchObject({ key: '0:a', seconds: 3.5 });
    players.reset();
    expect([players.request, players.here]).toStrictEqual([null, null]);
  });
});

describe('ComposerState video options', () => {
  it('sends valid options, blocks on invalid ones, and adds "here" only when ticked', () => {
    const composer = new ComposerState();
    composer.attachments = [CAT, CLIP];
    composer.videoOptions[CLIP.hash] = { fps: 1 };
    const here = { hash: CLIP.hash, seconds: 4, attachment: CLIP };
    expect(composer.outgoing(here).refs).toStrictEqual([CAT.hash, { hash: CLIP.hash, video: { fps: 1 } }]);
    composer.here = true;
    const out = composer.outgoing(here);
    expect(out.refs).toStrictEqual([CAT.hash, { hash: CLIP.hash, video: { fps: 1, here: 4 } }]);
    expect(out.shown[1].video).toStrictEqual({ fps: 1, here: 4 });
    composer.videoOptions[CLIP.hash] = null;
    expect(composer.videoReady).toBe(false);
    composer.remove(CLIP.hash);
    expect(composer.videoReady).toBe(true);
    composer.clear();
    expect([composer.here, composer.videoOptions]).toStrictEqual([false, {}]);
  });
});

describe('ChatState video progress', () => {
  it('shows extraction progress until the answer starts, then the answer', async () => {
    installMockBackend('one-model', { tokenMs: 2 });
    await loadModel(ONE_MODEL.models[0].path);
    const c = await createConversation('t');
    if (!c.ok) throw new Error('no conversation');
    const chat = new ChatState();
    const seen: number[] = [];
    const stop = $effect.root(() => {
      $effect(() => {
        if (chat.progress) seen.push(chat.progress.done);
      });
    });
    await chat.send(c.value.id, 'When does the ball appear?', [CLIP], {}, [{ hash: CLIP.hash, video: { fps: 1 } }]);
    await vi.waitFor(() => expect(chat.messages[1].status).toBe('complete'));
    stop();
    expect(chat.messages[1].content).toBe(VIDEO_ANSWER);
    expect(chat.progress).toBeNull();
    // fps 1 over the mock's 10 s clip: 10 frames.
    expect(seen.at(-1)).toBe(10);
    expect(seen.length).toBeGreaterThan(1);
  });
});
