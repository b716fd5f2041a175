// Generation settings sent with each message. Empty fields are left out, so the backend's (the
// model's generation_config) defaults apply.
import type { Settings } from '../ipc';

export class SettingsState {
  systemPrompt = $state('');
  temperature = $state<number | undefined>();
  topP = $state<number | undefined>();
  topK = $state<number | undefined>();
  maxNewTokens = $state<number | undefined>(1024);
  seed = $state<number | undefined>();
  minPixels = $state<number | undefined>();
  maxPixels = $state<number | undefined>();
  thinking = $state(false);

  toSettings(): Settings {
    const out: Settings = { thinking: this.thinking };
    if (this.systemPrompt.trim() !== '') out.systemPrompt = this.systemPrompt;
    const numbers = ['temperature', 'topP', 'topK', 'maxNewTokens', 'seed', 'minPixels', 'maxPixels'] as const;
    for (const key of numbers) {
      const v = this[key];
      if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
    }
    return out;
  }
}
