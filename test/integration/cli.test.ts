// Bad input gives one clear line and a non-zero exit, never a stack trace.
import { expect } from 'chai';
import path from 'node:path';
import { exec } from '../../lib/exec.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const nodelet = (args: string[]) => exec(path.join(root, 'bin/nodelet'), args, { allowFail: true, timeoutMs: 30_000 });

describe('nodelet CLI errors', () => {
  it('a missing kubeconfig: one line naming it, exit 1', async () => {
    const r = await nodelet(['agent', '--kubeconfig', '/nonexistent/kubeconfig', '--container-runtime-endpoint', 'unix:///nonexistent.sock']);
    expect(r.code).to.equal(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/kubeconfig/).and.match(/\/nonexistent\/kubeconfig/);
    expect(r.stderr).to.not.match(/\n\s+at /);
  });

  it('an invalid flag value: one line with the flag, exit 1', async () => {
    const r = await nodelet(['agent', '--kubeconfig', '/dev/null', '--max-pods', 'lots']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/max-pods/);
  });

  it('an unknown command: usage, exit 2', async () => {
    const r = await nodelet(['frobnicate']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/unknown command "frobnicate"/);
  });

  it('up --help prints usage and does nothing; an unknown flag is refused, exit 2', async () => {
    const help = await nodelet(['up', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^usage: nodelet/);
    const bad = await nodelet(['down', '--bogus']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr.trim()).to.equal('nodelet down: unexpected argument "--bogus" (flags: --profile)');
  });
});
