// Which video a timestamp chip seeks, and the refs a message's attachments are sent as.
import type { Attachment, AttachmentRef, VideoRequest } from '../ipc';

/** The player a chip of the answer at `index` seeks: the last video of the closest user message
 *  before it. `key` names that player (message position + hash), so two messages showing the same
 *  file have separate players. */
export function videoFor<T extends { role: string; attachments: Attachment[] }>(
  messages: readonly T[],
  index: number,
): { key: string; attachment: Attachment } | undefined {
  for (let i = index - 1; i >= 0; i--) {
    if (messages[i].role !== 'user') continue;
    const attachment = messages[i].attachments.filter((a) => a.kind === 'video').at(-1);
    return attachment ? { key: playerKey(i, attachment.hash), attachment } : undefined;
  }
  return undefined;
}

export function playerKey(messageIndex: number, hash: string): string {
  return `${messageIndex}:${hash}`;
}

/** A position in one player, for a "here" question. */
export interface Here {
  hash: string;
  seconds: number;
}

/**
 * What `send_message` gets for the composer's attachments: plain hashes, or hashes with the video
 * options set for them. With `here`, its video is sent again with `here` (the backend picks the
 * frames around it), added at the end when it is not among the attachments already.
 */
export function attachmentRefs(
  attachments: readonly Attachment[],
  options: Readonly<Record<string, VideoRequest>>,
  here: Here | null,
): AttachmentRef[] {
  const refs: AttachmentRef[] = attachments.map((a) => {
    const video = a.kind === 'video' ? options[a.hash] : undefined;
    const withHere = here && here.hash === a.hash ? { ...video, here: here.seconds } : video;
    return withHere && Object.keys(withHere).length > 0 ? { hash: a.hash, video: withHere } : a.hash;
  });
  if (here && !attachments.some((a) => a.hash === here.hash)) refs.push({ hash: here.hash, video: { here: here.seconds } });
  return refs;
}

/** The attachments the sent message shows: each video with the options it was sent with, and the
 *  "here" video appended when it came from an earlier message. Mirrors `attachmentRefs`. */
export function shownAttachments(
  attachments: readonly Attachment[],
  options: Readonly<Record<string, VideoRequest>>,
  here: (Here & { attachment: Attachment }) | null,
): Attachment[] {
  const shown = attachments.map((a) => {
    const video = a.kind === 'video' ? options[a.hash] : undefined;
    const withHere = here && here.hash === a.hash ? { ...video, here: here.seconds } : video;
    return withHere && Object.keys(withHere).length > 0 ? { ...a, video: withHere } : a;
  });
  if (here && !attachments.some((a) => a.hash === here.hash)) shown.push({ ...here.attachment, video: { here: here.seconds } });
  return shown;
}
