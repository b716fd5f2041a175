// What the next message will hold: its text and attachments (imported into the app's store before
// sending, so each shows its size and vision-token cost).
import { importAttachment, pasteAttachment, pickAttachments, type AppError, type Attachment, type Result } from '../ipc';

export class ComposerState {
  text = $state('');
  attachments = $state<Attachment[]>([]);
  /** How many imports are in flight (the send button waits for them). */
  importing = $state(0);
  error = $state<AppError | null>(null);

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
  }

  clear(): void {
    this.text = '';
    this.attachments = [];
  }
}
