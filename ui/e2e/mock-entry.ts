// Entry of the e2e page: install the mock backend named by `?scenario=`, then start the real UI.
import { installMockBackend, type Scenario } from './mock-backend';

const query = new URLSearchParams(location.search);
const scenario = (query.get('scenario') ?? 'no-model') as Scenario;
installMockBackend(scenario, {
  tokenMs: Number(query.get('tokenMs') ?? 20),
  downloadStepMs: Number(query.get('downloadStepMs') ?? 60),
});
await import('../src/main');
