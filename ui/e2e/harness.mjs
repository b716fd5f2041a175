// A tiny runner for the two node e2e scripts: named tests in order, each failure printed with its
// cause, and the closing line `N passed, N failed` (exit code 1 if any failed).
const tests = [];

export function test(name, fn) {
  tests.push({ name, fn });
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export async function run({ before, after } = {}) {
  let passed = 0;
  let failed = 0;
  let context;
  try {
    context = before ? await before() : undefined;
    for (const { name, fn } of tests) {
      const t0 = performance.now();
      try {
        await fn(context);
        passed++;
        console.log(`ok   ${name} (${Math.round(performance.now() - t0)} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${name}\n     ${e?.stack ?? e}`);
      }
    }
  } catch (e) {
    failed += tests.length - passed - failed || 1;
    console.log(`FAIL setup: ${e?.stack ?? e}`);
  } finally {
    if (after) await after(context).catch((e) => console.log(`teardown: ${e}`));
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}
