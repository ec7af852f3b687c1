// The log copier with a fake container whose output is a stream we write;
// demultiplexing is docker-modem's real code (no daemon is contacted).
import { expect } from 'chai';
import Dockerode from 'dockerode';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { LogCopiers, RotatingFile, rotatedFiles, rotatedToDelete, rotationSuffix } from '../../cri/docker/logs.ts';
import { parseLogLine } from '../../cri/logformat.ts';
import { nullLogger } from '../../lib/log.ts';

const frame = (stream: 1 | 2, text: string) => {
  const body = Buffer.from(text);
  const head = Buffer.alloc(8);
  head[0] = stream;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
};

class FakeLogDocker {
  readonly modem = new Dockerode({ socketPath: '/nonexistent/docker.sock' }).modem;
  readonly streams: PassThrough[] = [];
  readonly requests: Record<string, unknown>[] = [];
  /** What a read without follow answers (dockerode buffers it). */
  rest = Buffer.alloc(0);
  getContainer(_id: string) {
    return {
      logs: async (opts: Record<string, unknown>) => {
        this.requests.push(opts);
        if (opts.follow === false) return this.rest;
        const s = new PassThrough();
        this.streams.push(s);
        return s;
      },
    };
  }
}

describe('cri/docker/logs', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'cri-logs-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('copies multiplexed Docker output into CRI records and resumes after a restart without duplicates', async () => {
    const docker = new FakeLogDocker();
    const file = path.join(dir, 'app', '0.log');
    const copiers = new LogCopiers(docker as unknown as Dockerode, nullLogger());
    await copiers.start('c1', file, false);
    expect(docker.requests[0]).to.include({ follow: true, timestamps: true, since: 0 });
    const s1 = docker.streams[0]!;
    s1.write(frame(1, '2024-05-01T10:00:00.1Z one\n'));
    s1.write(frame(2, '2024-05-01T10:00:00.2Z err\n'));
    s1.write(frame(1, '2024-05-01T10:00:00.3Z two\n'));
    await new Promise((r) => setImmediate(r));
    await copiers.stopAll(); // nodelet stops
    // A new copier asks Docker from the last timestamp; Docker's `since` is inclusive.
    const again = new LogCopiers(docker as unknown as Dockerode, nullLogger());
    await again.start('c1', file, false);
    expect(docker.requests[1]!.since).to.equal(`${Date.UTC(2024, 4, 1, 10, 0, 0) / 1000}.300000000`);
    const s2 = docker.streams[1]!;
    s2.write(frame(1, '2024-05-01T10:00:00.3Z two\n'));
    s2.end(frame(1, '2024-05-01T10:00:00.4Z three\n'));
    await again.drain('c1');
    // The stream ended by itself: one more read, from the newest entry written, finds nothing new.
    expect(docker.requests.map((r) => r.follow)).to.deep.equal([true, true, false]);
    expect(docker.requests[2]!.since).to.equal(`${Date.UTC(2024, 4, 1, 10, 0, 0) / 1000}.400000000`);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(lines).to.deep.equal([
      '2024-05-01T10:00:00.1Z stdout F one',
      '2024-05-01T10:00:00.2Z stderr F err',
      '2024-05-01T10:00:00.3Z stdout F two',
      '2024-05-01T10:00:00.4Z stdout F three',
    ]);
    expect(again.has('c1')).to.equal(false);
  });

  it('reads what a followed stream missed once it ended, without repeating what it copied', async () => {
    const docker = new FakeLogDocker();
    const file = path.join(dir, 'app', '0.log');
    const copiers = new LogCopiers(docker as unknown as Dockerode, nullLogger());
    await copiers.start('c3', file, false);
    // Docker ends the followed stream before it sent the last entries (or we ended it after the exit).
    docker.rest = Buffer.concat([
      frame(1, '2024-05-01T10:00:00.1Z one\n'), // since is inclusive: already written
      frame(2, '2024-05-01T10:00:00.2Z two\n'),
      frame(1, '2024-05-01T10:00:00.3Z three\n'),
      frame(1, '2024-05-01T10:00:00.4Z tail'),
    ]);
    docker.streams[0]!.end(frame(1, '2024-05-01T10:00:00.1Z one\n'));
    await copiers.drain('c3');
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).to.deep.equal([
      '2024-05-01T10:00:00.1Z stdout F one',
      '2024-05-01T10:00:00.2Z stderr F two',
      '2024-05-01T10:00:00.3Z stdout F three',
      '2024-05-01T10:00:00.4Z stdout F tail',
    ]);
  });

  it('does not read the rest when the copier is stopped (the next copier resumes)', async () => {
    const docker = new FakeLogDocker();
    const file = path.join(dir, 'c4.log');
    const copiers = new LogCopiers(docker as unknown as Dockerode, nullLogger());
    await copiers.start('c4', file, false);
    docker.rest = frame(1, '2024-05-01T10:00:00.9Z later\n');
    docker.streams[0]!.write(frame(1, '2024-05-01T10:00:00.1Z one\n'));
    await new Promise((r) => setImmediate(r));
    await copiers.stopAll();
    expect(docker.requests.map((r) => r.follow)).to.deep.equal([true]);
    expect(readFileSync(file, 'utf8')).to.equal('2024-05-01T10:00:00.1Z stdout F one\n');
  });

  it('takes a TTY container\'s raw output as stdout', async () => {
    const docker = new FakeLogDocker();
    const file = path.join(dir, 'tty.log');
    const copiers = new LogCopiers(docker as unknown as Dockerode, nullLogger());
    await copiers.start('c2', file, true);
    docker.streams[0]!.end('2024-05-01T10:00:00Z hello\n');
    await copiers.drain('c2');
    expect(parseLogLine(readFileSync(file, 'utf8'))).to.deep.include({ stream: 'stdout', message: 'hello', partial: false });
  });

  it('rotates by size and keeps maxFiles files', () => {
    const file = path.join(dir, '0.log');
    let t = Date.UTC(2024, 4, 1, 10, 0, 0);
    const f = new RotatingFile(file, { maxSize: 10, maxFiles: 3 }, () => (t += 1000));
    for (let i = 0; i < 6; i++) f.write(Buffer.from(`line-${i}\n`)); // 7 bytes each: one per file
    f.close();
    const rotated = rotatedFiles(file);
    expect(rotated.map((r) => path.basename(r))).to.deep.equal(['0.log.20240501-100004.000', '0.log.20240501-100005.000']);
    expect(readFileSync(rotated[0]!, 'utf8')).to.equal('line-3\n');
    expect(readFileSync(file, 'utf8')).to.equal('line-5\n');
    expect(existsSync(file)).to.equal(true);
  });

  it('names and prunes rotated files', () => {
    expect(rotationSuffix(Date.UTC(2024, 4, 1, 10, 0, 5, 123))).to.equal('20240501-100005.123');
    expect(rotatedToDelete(['a', 'b', 'c', 'd'], 3)).to.deep.equal(['a', 'b']);
    expect(rotatedToDelete(['a'], 3)).to.deep.equal([]);
    expect(rotatedToDelete(['a', 'b'], 1)).to.deep.equal(['a', 'b']);
    writeFileSync(path.join(dir, 'x.log.20240501-100005.123'), '');
    writeFileSync(path.join(dir, 'x.log.tmp'), '');
    expect(rotatedFiles(path.join(dir, 'x.log')).map((f) => path.basename(f))).to.deep.equal(['x.log.20240501-100005.123']);
  });
});
