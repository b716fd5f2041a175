// The open conversation's messages and the generation streaming into it. Events go through the
// pure reducer in ../chat/stream.ts; this class only decides which message they land on.
import type { Progress } from '../chat/progress';
import { applyEvent, pendingAnswer } from '../chat/stream';
import {
  cancelGeneration,
  conversationMessages,
  editAndResend,
  regenerate,
  sendMessage,
  type AppError,
  type Attachment,
  type AttachmentRef,
  type GenerationEvent,
  type Result,
  type SentIds,
  type Settings,
  type StoredMessage,
} from '../ipc';

export class ChatState {
  conversationId = $state<number | null>(null);
  messages = $state<StoredMessage[]>([]);
  error = $state<AppError | null>(null);
  /** A generation runs, in this conversation or one the user has left since (the backend runs
   *  one at a time, so the send button waits for it either way). */
  running = $state(false);
  /** The running answer's work before its first token: frame extraction (issue 7), then the
   *  vision tower and the prompt's prefill (issue 8). */
  progress = $state<Progress | null>(null);
  /** Called when a generation ends, so the conversation list can show the new order/title. */
  onFinished: () => void = () => {};

  get generating(): boolean {
    return this.running;
  }

  async open(id: number | null): Promise<void> {
    this.conversationId = id;
    this.error = null;
    if (id === null) {
      this.messages = [];
      return;
    }
    const result = await conversationMessages(id);
    if (this.conversationId !== id) return; // another conversation was opened meanwhile
    if (result.ok) this.messages = result.value;
    else this.error = result.error;
  }

  /** Events for the answer at `index`; a generation only ever writes to its own message. */
  private listener(index: number): (event: GenerationEvent) => void {
    const conversation = this.conversationId;
    return (event) => {
      const ended = event.type === 'done' || event.type === 'error';
      if (ended) this.running = false;
      // `started` comes between frame extraction and the prefill: it keeps the bar up.
      if (event.type === 'progress') this.progress = { stage: event.stage, done: event.done, total: event.total };
      else if (event.type !== 'started') this.progress = null;
      if (this.conversationId === conversation && this.messages[index] !== undefined) {
        this.messages[index] = applyEvent(this.messages[index], event);
      }
      if (ended) this.onFinished();
    };
  }

  private async start(index: number, call: (onEvent: (e: GenerationEvent) => void) => Promise<Result<SentIds>>, userIndex?: number): Promise<void> {
    this.error = null;
    this.running = true;
    const result = await call(this.listener(index));
    if (!result.ok) {
      this.running = false;
      this.progress = null;
      this.error = result.error;
      const m = this.messages[index];
      if (m?.status === 'streaming') this.messages[index] = { ...m, status: 'error' };
      return;
    }
    const m = this.messages[index];
    if (m && m.id === -1) this.messages[index] = { ...m, id: result.value.assistantMessageId };
    if (userIndex !== undefined && this.messages[userIndex]) this.messages[userIndex].id = result.value.userMessageId;
  }

  /** `refs`: what to send for the attachments when some carry video options (default: hashes). */
  async send(conversationId: number, text: string, attachments: Attachment[], settings: Settings, refs?: AttachmentRef[]): Promise<void> {
    if (this.generating) return;
    this.conversationId = conversationId;
    this.messages.push({ id: -1, role: 'user', content: text, status: 'complete', attachments });
    this.messages.push(pendingAnswer());
    const index = this.messages.length - 1;
    await this.start(
      index,
      (onEvent) => sendMessage(conversationId, text, refs ?? attachments.map((a) => a.hash), settings, onEvent),
      index - 1,
    );
  }

  async regenerate(settings: Settings): Promise<void> {
    const id = this.conversationId;
    const last = this.messages.at(-1);
    if (id === null || this.generating || last?.role !== 'assistant') return;
    this.messages[this.messages.length - 1] = pendingAnswer();
    await this.start(this.messages.length - 1, (onEvent) => regenerate(id, settings, onEvent));
  }

  async editAndResend(messageId: number, text: string, settings: Settings): Promise<void> {
    const at = this.messages.findIndex((m) => m.id === messageId && m.role === 'user');
    if (at < 0 || this.generating) return;
    this.messages = [...this.messages.slice(0, at), { ...this.messages[at], content: text }, pendingAnswer()];
    await this.start(at + 1, (onEvent) => editAndResend(messageId, text, settings, onEvent));
  }

  async stop(): Promise<void> {
    const result = await cancelGeneration();
    if (!result.ok) this.error = result.error;
  }
}
