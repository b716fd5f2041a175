// The models found on disk and the one loaded. Only reactive state and the calls that change it.
import {
  appStatus,
  loadModel,
  loadedModel,
  unloadModel,
  type AppError,
  type AppStatus,
  type DTypeChoice,
  type Device,
  type LoadProgress,
  type ModelInfo,
  type Quant,
} from '../ipc';

export class ModelsState {
  status = $state<AppStatus | null>(null);
  loaded = $state<ModelInfo | null>(null);
  /** Path of the model being loaded, while it loads. */
  loading = $state<string | null>(null);
  /** The load's current stage, while it loads. */
  progress = $state<LoadProgress | null>(null);
  error = $state<AppError | null>(null);
  device = $state<Device>('cpu');
  dtype = $state<DTypeChoice>('auto');
  quant = $state<Quant>('none');

  async refresh(): Promise<void> {
    const status = await appStatus();
    if (!status.ok) {
      this.error = status.error;
      return;
    }
    this.status = status.value;
    const loaded = await loadedModel();
    // An older backend without loaded_model is not an error worth showing on the first screen.
    if (loaded.ok) this.loaded = loaded.value;
  }

  /** True when the model loaded. */
  async load(path: string): Promise<boolean> {
    this.loading = path;
    this.progress = null;
    this.error = null;
    const result = await loadModel(
      path,
      this.device,
      this.dtype,
      (p) => (this.progress = p),
      this.quant,
    );
    this.loading = null;
    this.progress = null;
    if (result.ok) this.loaded = result.value;
    else {
      this.error = result.error;
      // A failed load has already dropped the previous model.
      const still = await loadedModel();
      if (still.ok) this.loaded = still.value;
    }
    return result.ok;
  }

  async unload(): Promise<void> {
    const result = await unloadModel();
    if (result.ok) this.loaded = null;
    else this.error = result.error;
  }
}
