// The conversation list of the sidebar: search, select, rename, delete, export.
import {
  createConversation,
  deleteConversation,
  exportConversation,
  listConversations,
  renameConversation,
  type AppError,
  type ConversationSummary,
  type ExportFormat,
} from '../ipc';

export class ConversationsState {
  list = $state<ConversationSummary[]>([]);
  search = $state('');
  selected = $state<number | null>(null);
  error = $state<AppError | null>(null);

  async refresh(): Promise<void> {
    const result = await listConversations(this.search.trim() || undefined);
    if (result.ok) this.list = result.value;
    else this.error = result.error;
  }

  /** A new, empty conversation, selected. Null (and `error` set) when the backend refused. */
  async create(title?: string): Promise<ConversationSummary | null> {
    const result = await createConversation(title);
    if (!result.ok) {
      this.error = result.error;
      return null;
    }
    this.selected = result.value.id;
    await this.refresh();
    return result.value;
  }

  async rename(id: number, title: string): Promise<void> {
    const result = await renameConversation(id, title);
    if (!result.ok) this.error = result.error;
    await this.refresh();
  }

  async remove(id: number): Promise<void> {
    const result = await deleteConversation(id);
    if (!result.ok) this.error = result.error;
    if (this.selected === id) this.selected = null;
    await this.refresh();
  }

  async exported(id: number, format: ExportFormat): Promise<string | null> {
    const result = await exportConversation(id, format);
    if (result.ok) return result.value;
    this.error = result.error;
    return null;
  }
}
