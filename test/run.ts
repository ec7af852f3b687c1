// Runs the named suites in order, each in its own process, and ends with the
// line CI reads: "N passed, N failed".
import { spawn } from 'node:child_process';
import path from 'node:path';

const suites = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const total = { passed: 0, failed: 0, skipped: 0 };

for (const suite of suites) {
  console.log(`\n=== suite: ${suite} ===`);
  const started = Date.now();
  const got = await new Promise<{ passed: number; failed: number; skipped: number } | undefined>((resolve) => {
    let last: string | undefined;
    const child = spawn(process.execPath, [path.join(here, 'suite.ts'), suite], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('@@SUMMARY ')) last = line.slice(10);
        else process.stdout.write(line + '\n');
      }
    });
    child.on('close', () => resolve(last ? JSON.parse(last) : undefined));
  });
  const s = got ?? { passed: 0, failed: 1, skipped: 0 }; // a crashed suite counts as a failure
  if (!got) console.log(`suite ${suite} crashed before reporting`);
  console.log(`=== ${suite}: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped in ${Math.round((Date.now() - started) / 1000)} s ===`);
  total.passed += s.passed;
  total.failed += s.failed;
  total.skipped += s.skipped;
}
// The last line is exactly "N passed, N failed" (what CI reads); skips are said just before it.
if (total.skipped) console.log(`${total.skipped} skipped`);
console.log(`${total.passed} passed, ${total.failed} failed`);
process.exit(total.failed > 0 ? 1 : 0);
