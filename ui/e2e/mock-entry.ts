// Entry of the e2e page: install the mock backend named by `?scenario=`, then start the real UI.
import { installMockBackend, type Scenario } from './mock-backend';

const scenario = (new URLSearchParams(location.search).get('scenario') ?? 'no-model') as Scenario;
installMockBackend(scenario);
await import('../src/main');
