import { describe, expect, it } from 'vitest';
import type { Attachment } from '../ipc';
import { attachmentRefs, playerKey, shownAttachments, videoFor } from './players';

const att = (hash: string, kind: 'image' | 'video'): Attachment => ({
  hash,
  kind,
  mime: kind === 'video' ? 'video/mp4' : 'image/png',
  byteSize: 1,
  fileName: `${hash}.${kind === 'video' ? 'mp4' : 'png'}`,
  url: `asset://localhost/${hash}`,
});
const CLIP = att('clip', 'video');
const OTHER = att('other', 'video');
const CAT = att('cat', 'image');
const msg = (role: 'user' | 'assistant', attachments: Attachment[] = []) => ({ role, attachments });

describe('videoFor', () => {
  it('is the last video of the closest user message before the answer', () => {
    const messages = [msg('user', [CLIP]), msg('assistant'), msg('user', [OTHER, CAT]), msg('assistant')];
    expect(videoFor(messages, 1)).toStrictEqual({ key: playerKey(0, 'clip'), attachment: CLIP });
    expect(videoFor(messages, 3)).toStrictEqual({ key: playerKey(2, 'other'), attachment: OTHER });
  });
  it('is none when that user message has no video (an older video is not used)', () => {
    const messages = [msg('user', [CLIP]), msg('assistant'), msg('user', [CAT]), msg('assistant')];
    expect(videoFor(messages, 3)).toBeUndefined();
    expect(videoFor([msg('assistant')], 0)).toBeUndefined();
  });
  it('gives the same file in two messages two players', () => {
    const messages = [msg('user', [CLIP]), msg('assistant'), msg('user', [CLIP]), msg('assistant')];
    expect(videoFor(messages, 1)?.key).not.toBe(videoFor(messages, 3)?.key);
  });
});

describe('attachmentRefs / shownAttachments', () => {
  it('sends plain hashes when nothing is set', () => {
    expect(attachmentRefs([CAT, CLIP], {}, null)).toStrictEqual(['cat', 'clip']);
    expect(shownAttachments([CAT, CLIP], {}, null)).toStrictEqual([CAT, CLIP]);
  });
  it('sends a video with its options, never an image', () => {
    const options = { clip: { fps: 1, start: 2, end: 4 }, cat: { fps: 3 } };
    expect(attachmentRefs([CAT, CLIP], options, null)).toStrictEqual(['cat', { hash: 'clip', video: { fps: 1, start: 2, end: 4 } }]);
    expect(shownAttachments([CAT, CLIP], options, null)[1]).toStrictEqual({ ...CLIP, video: { fps: 1, start: 2, end: 4 } });
  });
  it('adds here to an attached video', () => {
    expect(attachmentRefs([CLIP], { clip: { fps: 2 } }, { hash: 'clip', seconds: 3.5 })).toStrictEqual([{ hash: 'clip', video: { fps: 2, here: 3.5 } }]);
  });
  it('appends the video of an earlier message for a here question', () => {
    const here = { hash: 'clip', seconds: 7, attachment: CLIP };
    expect(attachmentRefs([], {}, here)).toStrictEqual([{ hash: 'clip', video: { here: 7 } }]);
    expect(shownAttachments([CAT], {}, here)).toStrictEqual([CAT, { ...CLIP, video: { here: 7 } }]);
  });
  it('leaves empty option objects out', () => {
    expect(attachmentRefs([CLIP], { clip: {} }, null)).toStrictEqual(['clip']);
  });
});
