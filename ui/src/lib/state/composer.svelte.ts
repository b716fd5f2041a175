// What the next message will hold: its text and attachments (imported into the app's store before
// sending, so each shows its size and vision-token cost).
import { importAttachment, pasteAttachment, pickAttachments, type AppError, type Attachment, type AttachmentRef, type Result, type VideoOptions } from '../ipc';
import { attachmentRefs, shownAttachments, type Here } from '../video/players';

export class ComposerState {
  text = $state('');
  attachments = $state<Attachment[]>([]);
  /** How many imports are in flight (the send button waits for them). */
  importing = $state(0);
  error = $state<AppError | null>(null);
  /** Per-video settings by hash (issue 7); null while the form holds an invalid value. */
  videoOptions = $state<Record<string, VideoOptions | null>>({});
  /** Ask about the current player position ("what happens here?") with the next message. */
  here = $state(false);

  private async adding(work: Promise<Result<Attachment | Attachment[]>>): Promise<void> {
    this.importing++;
    const result = await work;
    this.importing--;
    if (!result.ok) {
      this.error = result.error;
      return;
    }
    this.error = null;
    for (const a of Array.isArray(result.value) ? result.value : [result.value]) {
      // The store is content-addressed: the same file twice is one attachment.
      if (!this.attachments.some((b) => b.hash === a.hash)) this.attachments.push(a);
    }
  }

  importPath(path: string): Promise<void> {
    return this.adding(importAttachment(path));
  }

  paste(bytes: Uint8Array, name: string): Promise<void> {
    return this.adding(pasteAttachment(bytes, name));
  }

  pick(): Promise<void> {
    return this.adding(pickAttachments());
  }

  remove(hash: string): void {
    this.attachments = this.attachments.filter((a) => a.hash !== hash);
    delete this.videoOptions[hash];
  }

  /** Whether every video's settings form holds valid values. */
  get videoReady(): boolean {
    return Object.values(this.videoOptions).every((o) => o !== null);
  }

  /** What to send and show for the attachments: video options by hash, plus the player position
   *  `here` when the "here" box is ticked. */
  outgoing(here: (Here & { attachment: Attachment }) | null): { refs: AttachmentRef[]; shown: Attachment[] } {
    const options: Record<string, VideoOptions> = {};
    for (const [hash, o] of Object.entries(this.videoOptions)) if (o) options[hash] = o;
    const at = this.here ? here : null;
    return { refs: attachmentRefs(this.attachments, options, at), shown: shownAttachments(this.attachments, options, at) };
  }

  clear(): void {
    this.text = '';
    this.attachments = [];
    this.videoOptions = {};
    this.here = false;
  }
}
