// lib/exec with stdin given in pieces: everything arrives in order (also past
// the point where it waits for the reader), and a command that stops reading
// early does not leave the writer hanging.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { exec } from '../../lib/exec.ts';

function* pieces(n: number, size: number): Generator<string> {
  for (let i = 0; i < n; i++) yield `${String(i).padStart(8, '0')}${'x'.repeat(size - 9)}\n`;
}

describe('exec: stdin in pieces', () => {
  it('writes every piece in order, beyond what the pipe and our buffer hold at once', async () => {
    // 12 MiB: more than the 4 MiB the writer lets queue before it waits for the reader.
    const want = createHash('sha256').update([...pieces(3072, 4096)].join('')).digest('hex');
    const res = await exec('sha256sum', [], { input: pieces(3072, 4096) });
    expect(res.stdout.split(' ')[0]).to.equal(want);
  });

  it('returns when the command exits without reading it all', async () => {
    const res = await exec('head', ['-c', '16'], { input: pieces(3072, 4096) });
    expect(res.stdout).to.equal(`00000000${'x'.repeat(8)}`);
  });

  it('a failing command is reported as before', async () => {
    const res = await exec('sh', ['-c', 'cat >/dev/null; echo bad >&2; exit 3'], { input: pieces(10, 100), allowFail: true });
    expect(res.code).to.equal(3);
    expect(res.stderr.trim()).to.equal('bad');
  });
});
