// Runs one test suite (test/<suite>/**/*.test.ts) with mocha and prints a
// machine-readable summary line for test/run.ts. A suite may have a fixture
// (test/<suite>/fixture.ts exporting setup/teardown) around all its files,
// e.g. the integration suite brings up a sandboxed cluster there.
import Mocha from 'mocha';
import { existsSync, globSync } from 'node:fs';
import path from 'node:path';

const suite = process.argv[2];
const grep = process.env.NODELET_TEST_GREP;
if (!suite) throw new Error('usage: suite.ts <unit|integration|e2e>');
const root = path.dirname(new URL(import.meta.url).pathname);
const dir = path.join(root, suite);
const files = globSync('**/*.test.ts', { cwd: dir }).sort().map((f) => path.join(dir, f));
const only = process.env.NODELET_TEST_FILES?.split(',').filter(Boolean);
const selected = only ? files.filter((f) => only.some((o) => f.includes(o))) : files;

const summary = { passed: 0, failed: 0, skipped: 0 };
const emit = () => console.log(`@@SUMMARY ${JSON.stringify(summary)}`);

const fixturePath = path.join(dir, 'fixture.ts');
type Fixture = { setup?: () => Promise<void>; teardown?: () => Promise<void> };
let fixture: Fixture = {};
if (selected.length > 0 && existsSync(fixturePath)) fixture = (await import(fixturePath)) as Fixture;

try {
  await fixture.setup?.();
} catch (err) {
  console.error(`suite ${suite}: fixture setup failed:`, err);
  summary.failed = 1;
  try { await fixture.teardown?.(); } catch (e) { console.error('teardown after failed setup:', e); }
  emit();
  process.exit(1);
}

const mocha = new Mocha({
  timeout: suite === 'unit' ? 10_000 : 180_000,
  reporter: 'spec',
  ...(grep ? { grep } : {}),
});
for (const f of selected) mocha.addFile(f);
await mocha.loadFilesAsync();
const stats = await new Promise<Mocha.Stats | undefined>((resolve) => {
  const runner = mocha.run(() => resolve(runner.stats));
});
summary.passed = stats?.passes ?? 0;
summary.failed = stats?.failures ?? 0;
summary.skipped = stats?.pending ?? 0;
try {
  await fixture.teardown?.();
} catch (err) {
  console.error(`suite ${suite}: fixture teardown failed:`, err);
  summary.failed += 1;
}
emit();
process.exit(summary.failed > 0 ? 1 : 0);
