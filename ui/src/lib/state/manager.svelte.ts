// The model manager's state: the catalogue for this machine, the local models, and the downloads
// (one view per repository, folded from the streamed events by ../manager/download.ts).
import {
  addModelFolder,
  cancelDownload,
  localModels,
  modelCatalog,
  pauseDownload,
  removeModelFolder,
  startDownload,
  type AppError,
  type CatalogView,
  type LocalModels,
} from '../ipc';
import { applyEvent, isActive, settle, startingView, type DownloadView } from '../manager/download';

export class ManagerState {
  catalog = $state<CatalogView | null>(null);
  local = $state<LocalModels | null>(null);
  error = $state<AppError | null>(null);
  /** The add-folder error, shown beside its input. */
  folderError = $state<AppError | null>(null);
  downloads = $state<Record<string, DownloadView>>({});
  /** Called when a download completes (the app refreshes its model list). */
  onDownloaded: (repo: string) => void = () => {};
  private cancelled = new Set<string>();

  async refresh(): Promise<void> {
    const [catalog, local] = await Promise.all([modelCatalog(), localModels()]);
    if (catalog.ok) this.catalog = catalog.value;
    else this.error = catalog.error;
    if (local.ok) this.local = local.value;
    else this.error = local.error;
  }

  async refreshLocal(): Promise<void> {
    const local = await localModels();
    if (local.ok) this.local = local.value;
    else this.error = local.error;
  }

  /** Starts or resumes `repo`; resolves when the download ends one way or another. */
  async download(repo: string): Promise<void> {
    if (isActive(this.downloads[repo])) return;
    const kept = this.local?.partialDownloads.find((p) => p.repo === repo)?.keptBytes ?? 0;
    this.downloads[repo] = startingView(repo, kept);
    this.cancelled.delete(repo);
    const result = await startDownload(repo, (e) => {
      this.downloads[repo] = applyEvent(this.downloads[repo], e);
    });
    this.downloads[repo] = settle(this.downloads[repo], result, this.cancelled.has(repo));
    await this.refreshLocal();
    if (result.ok && result.value.status === 'complete') this.onDownloaded(repo);
  }

  async pause(repo: string): Promise<void> {
    const view = this.downloads[repo];
    if (view) this.downloads[repo] = { ...view, status: 'pausing' };
    await pauseDownload(repo);
  }

  /** Stops a running download, or discards one left from an earlier session; either way its
   *  partial files are deleted. */
  async cancel(repo: string): Promise<void> {
    this.cancelled.add(repo);
    const result = await cancelDownload(repo);
    if (!result.ok) this.error = result.error;
    else if (!result.value) {
      // Nothing was running: the partial files of an earlier session are gone now.
      delete this.downloads[repo];
      await this.refreshLocal();
    }
  }

  /** Adds a folder by path, or through the picker without one. True when it was added. */
  async addFolder(path?: string): Promise<boolean> {
    this.folderError = null;
    const result = await addModelFolder(path);
    if (!result.ok) {
      this.folderError = result.error;
      return false;
    }
    if (result.value === null) return false;
    this.local = result.value;
    return true;
  }

  async removeFolder(path: string): Promise<void> {
    const result = await removeModelFolder(path);
    if (result.ok) this.local = result.value;
    else this.error = result.error;
  }
}
