// How one generation's events change the assistant message they stream into. Pure, so the order
// and edge cases (an error after tokens, a cancel) are table-tested without a backend.
import type { GenerationEvent, StoredMessage } from '../ipc';

/** The assistant message shown while the backend has not yet told us its id. */
export function pendingAnswer(): StoredMessage {
  return { id: -1, role: 'assistant', content: '', status: 'streaming', attachments: [] };
}

/** The message after `event`. Events after the message stopped streaming are ignored, so a late
 *  token cannot revive an interrupted answer. */
export function applyEvent(message: StoredMessage, event: GenerationEvent): StoredMessage {
  if (message.status !== 'streaming') return message;
  switch (event.type) {
    case 'started':
      return { ...message, id: event.messageId };
    case 'progress':
      // Work before the first token: shown by the progress bar (ChatState.progress), not in the text.
      return message;
    case 'token': {
      const thinking = (message.thinking ?? '') + event.thinking;
      return { ...message, content: message.content + event.text, ...(thinking === '' ? {} : { thinking }) };
    }
    case 'done':
      return {
        ...message,
        status: event.stats.finishReason === 'cancelled' ? 'interrupted' : 'complete',
        stats: event.stats,
      };
    case 'error':
      return { ...message, status: 'error', error: event.error } as StoredMessage;
  }
}

/** The error an `error` event left on a message, if any (kept beside the partial text). */
export function messageError(message: StoredMessage): { kind: string; message: string } | undefined {
  return (message as StoredMessage & { error?: { kind: string; message: string } }).error;
}
