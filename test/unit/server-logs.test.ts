// /containerLogs option handling and CRI log file reading (upstream ReadLogs).
import { expect } from 'chai';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LogFormatter, parseLogOptions, readLogFile, tailOffset, type LogOptions } from '../../agent/server/logs.ts';
import { realClock } from '../../lib/clock.ts';

const NOW = Date.UTC(2025, 0, 1, 0, 1, 0, 250); // 00:01:00.25

function parse(q: string) {
  return parseLogOptions(new URLSearchParams(q), NOW);
}

function opts(o: Partial<LogOptions> = {}): LogOptions {
  return { follow: false, previous: false, timestamps: false, stream: 'All', ...o };
}

const FILE = [
  '2025-01-01T00:00:01.5Z stdout F one',
  '2025-01-01T00:00:02Z stderr F two',
  '2025-01-01T00:00:03Z stdout P thr',
  '2025-01-01T00:00:03Z stdout F ee',
  'garbage line',
  '2025-01-01T00:00:04.123456789Z stdout F four',
].join('\n') + '\n';

describe('server/logs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'server-logs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('parseLogOptions', () => {
    it('defaults to everything, both streams', () => {
      expect(parse('')).to.deep.equal({ ok: true, options: { follow: false, previous: false, timestamps: false, stream: 'All' } });
    });

    it('reads the booleans as Go ParseBool does', () => {
      const r = parse('follow=1&previous=True&timestamps=t');
      expect(r).to.deep.include({ ok: true });
      expect(r.ok && r.options).to.include({ follow: true, previous: true, timestamps: true });
      expect(parse('follow=yes')).to.deep.include({ ok: false, status: 400 });
    });

    it('takes tailLines, the old "tail" spelling and tail=all', () => {
      expect(parse('tailLines=3').ok && (parse('tailLines=3') as any).options.tailLines).to.equal(3);
      expect((parse('tail=2') as any).options.tailLines).to.equal(2);
      expect((parse('tailLines=3&tail=all') as any).options.tailLines).to.equal(undefined);
      expect(parse('tailLines=x')).to.deep.include({ ok: false, status: 400 });
      expect(parse('tailLines=-1')).to.deep.include({ ok: false, status: 422 });
    });

    it('turns sinceSeconds into a sinceTime from now, and keeps sinceTime to whole seconds', () => {
      expect((parse('sinceSeconds=30') as any).options.sinceTime).to.equal('2025-01-01T00:00:30.25Z');
      expect((parse('sinceTime=2025-01-01T00:00:02.9Z') as any).options.sinceTime).to.equal('2025-01-01T00:00:02Z');
      expect(parse('sinceTime=yesterday')).to.deep.include({ ok: false, status: 400 });
      expect(parse('sinceSeconds=0')).to.deep.include({ ok: false, status: 422 });
      expect(parse('sinceSeconds=5&sinceTime=2025-01-01T00:00:02Z')).to.deep.include({ ok: false, status: 422 });
    });

    it('validates limitBytes and stream', () => {
      expect((parse('limitBytes=10') as any).options.limitBytes).to.equal(10);
      expect(parse('limitBytes=0')).to.deep.include({ ok: false, status: 422 });
      expect((parse('stream=Stderr') as any).options.stream).to.equal('Stderr');
      expect(parse('stream=both')).to.deep.include({ ok: false, status: 400 });
      expect(parse('stream=Stdout&tailLines=1')).to.deep.include({ ok: false, status: 422 });
    });
  });

  describe('LogFormatter', () => {
    it('joins partial records, adds timestamps per record and skips malformed lines', () => {
      const f = new LogFormatter(opts({ timestamps: true }));
      const out = FILE.trim().split('\n').map((l) => f.line(l).toString()).join('');
      expect(out).to.equal(
        '2025-01-01T00:00:01.5Z one\n2025-01-01T00:00:02Z two\n2025-01-01T00:00:03Z thr2025-01-01T00:00:03Z ee\n2025-01-01T00:00:04.123456789Z four\n',
      );
    });

    it('filters by sinceTime (nanosecond order) and stream', () => {
      const f = new LogFormatter(opts({ sinceTime: '2025-01-01T00:00:02Z', stream: 'Stdout' }));
      expect(FILE.trim().split('\n').map((l) => f.line(l).toString()).join('')).to.equal('three\nfour\n');
      const g = new LogFormatter(opts({ sinceTime: '2025-01-01T00:00:01.6Z', stream: 'Stderr' }));
      expect(FILE.trim().split('\n').map((l) => g.line(l).toString()).join('')).to.equal('two\n');
    });

    it('stops at limitBytes, cutting the last record', () => {
      const f = new LogFormatter(opts({ limitBytes: 6 }));
      expect(f.line('2025-01-01T00:00:01Z stdout F one').toString()).to.equal('one\n');
      expect(f.line('2025-01-01T00:00:02Z stdout F two').toString()).to.equal('tw');
      expect(f.exhausted).to.equal(true);
      expect(f.line('2025-01-01T00:00:03Z stdout F three')).to.have.length(0);
    });
  });

  describe('tailOffset', () => {
    async function tail(text: string, n: number): Promise<string> {
      const file = path.join(dir, 't.log');
      writeFileSync(file, text);
      const fh = await open(file, 'r');
      try {
        const off = await tailOffset(fh, Buffer.byteLength(text), n);
        return Buffer.from(text).subarray(off).toString();
      } finally {
        await fh.close();
      }
    }

    it('finds the start of the last n lines', async () => {
      expect(await tail('a\nb\nc\n', 2)).to.equal('b\nc\n');
      expect(await tail('a\nb\nc\n', 3)).to.equal('a\nb\nc\n');
      expect(await tail('a\nb\nc\n', 10)).to.equal('a\nb\nc\n');
      expect(await tail('a\nb\nc\n', 0)).to.equal('');
      expect(await tail('a\nb\nc', 1)).to.equal('c');
      expect(await tail('', 5)).to.equal('');
    });

    it('works across read blocks', async () => {
      const lines = Array.from({ length: 5000 }, (_, i) => `line-${i}-${'x'.repeat(40)}`);
      expect(await tail(lines.join('\n') + '\n', 3)).to.equal(lines.slice(-3).join('\n') + '\n');
    });
  });

  describe('readLogFile', () => {
    function sink() {
      const chunks: string[] = [];
      return { chunks, write: async (b: Buffer) => void chunks.push(b.toString()), text: () => chunks.join('') };
    }

    it('reads the whole file, or its tail', async () => {
      const file = path.join(dir, '0.log');
      writeFileSync(file, FILE);
      const a = sink();
      await readLogFile(file, opts(), a, { clock: realClock, isRunning: async () => false });
      expect(a.text()).to.equal('one\ntwo\nthree\nfour\n');
      const b = sink();
      await readLogFile(file, opts({ tailLines: 2 }), b, { clock: realClock, isRunning: async () => false });
      expect(b.text()).to.equal('four\n'); // the garbage line counts as a file line, as upstream
    });

    it('follows appended lines and a rotated file until the container stops', async () => {
      const file = path.join(dir, '0.log');
      writeFileSync(file, '2025-01-01T00:00:01Z stdout F a\n');
      const s = sink();
      let running = true;
      const done = readLogFile(file, opts({ follow: true }), s, { clock: realClock, isRunning: async () => running, pollMs: 5 });
      const waitText = async (t: string) => {
        while (s.text() !== t) await new Promise((r) => setTimeout(r, 5));
      };
      await waitText('a\n');
      appendFileSync(file, '2025-01-01T00:00:02Z stdout F b\n2025-01-01T00:00:03Z stdout F c');
      await waitText('a\nb\n'); // c is not a whole line yet
      appendFileSync(file, '\n');
      await waitText('a\nb\nc\n');
      // Rotation: the old file moves away, a new one takes the name.
      renameSync(file, `${file}.20250101-000004`);
      writeFileSync(file, '2025-01-01T00:00:05Z stdout F d\n');
      await waitText('a\nb\nc\nd\n');
      running = false;
      await done;
      expect(s.text()).to.equal('a\nb\nc\nd\n');
    });

    it('stops following when aborted', async () => {
      const file = path.join(dir, '0.log');
      writeFileSync(file, '');
      const ac = new AbortController();
      const done = readLogFile(file, opts({ follow: true }), sink(), { clock: realClock, isRunning: async () => true, signal: ac.signal, pollMs: 5 });
      ac.abort();
      await done;
    });

    it('fails for a missing file', async () => {
      let err: unknown;
      try {
        await readLogFile(path.join(dir, 'missing.log'), opts(), sink(), { clock: realClock, isRunning: async () => false });
      } catch (e) {
        err = e;
      }
      expect((err as NodeJS.ErrnoException).code).to.equal('ENOENT');
    });
  });
});
