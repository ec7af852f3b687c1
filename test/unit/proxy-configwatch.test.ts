// The --config watch (proxy/configwatch.ts) against a real file in a temp dir.
import { expect } from 'chai';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { watchConfigFile } from '../../proxy/configwatch.ts';

/** Resolves with the events seen within `ms` after `act` (the watch started before it). */
async function eventsAfter(file: string, act: () => void, ms = 500): Promise<{ events: string[]; errors: unknown[] }> {
  const events: string[] = [];
  const errors: unknown[] = [];
  const stop = watchConfigFile(file, (e) => events.push(e), (err) => errors.push(err));
  // A timer keeps the test alive: the watch itself does not hold the process open.
  await new Promise((r) => setTimeout(r, 50));
  act();
  await new Promise((r) => setTimeout(r, ms));
  stop();
  return { events, errors };
}

describe('proxy/configwatch: the --config file change that ends the proxy (as kube-proxy)', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nodelet-configwatch-'));
    file = path.join(dir, 'config.yaml');
    writeFileSync(file, 'kind: KubeProxyConfiguration\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a write once, however many writes follow', async () => {
    const r = await eventsAfter(file, () => {
      writeFileSync(file, 'kind: KubeProxyConfiguration\nmode: nftables\n');
      writeFileSync(file, 'kind: KubeProxyConfiguration\nmode: iptables\n');
    });
    expect(r.events).to.deep.equal(['change']);
    expect(r.errors).to.deep.equal([]);
  });

  it('reports a file replaced by a rename (editors, ConfigMap volumes)', async () => {
    const r = await eventsAfter(file, () => {
      writeFileSync(`${file}.new`, 'kind: KubeProxyConfiguration\n');
      renameSync(`${file}.new`, file);
    });
    expect(r.events).to.have.length(1);
    expect(['rename', 'change']).to.include(r.events[0]);
  });

  it('reports nothing when the file is left alone', async () => {
    expect(await eventsAfter(file, () => {}, 300)).to.deep.equal({ events: [], errors: [] });
  });

  it('a file that cannot be watched is an error for the caller to log, not a throw', async () => {
    const r = await eventsAfter(path.join(dir, 'missing.yaml'), () => {}, 50);
    expect(r.events).to.deep.equal([]);
    expect(r.errors).to.have.length(1);
    expect((r.errors[0] as NodeJS.ErrnoException).code).to.equal('ENOENT');
  });
});
