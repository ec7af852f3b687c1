import { expect } from 'chai';
import {
  compareTimestamps,
  containerLogPath,
  formatLogLine,
  formatLogRecords,
  joinRecords,
  parseLogLine,
  parseRfc3339Nano,
  podLogDirectory,
  rfc3339Nano,
  TimestampedLineSplitter,
} from '../../cri/logformat.ts';
import { lastTimestamp, sinceParam } from '../../cri/docker/logs.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const T = '2016-10-06T00:17:09.669794202Z';

describe('cri/logformat', () => {
  it('formats RFC3339Nano like Go: UTC, fraction without trailing zeros', () => {
    const s = Date.UTC(2016, 9, 6, 0, 17, 9) / 1000;
    expect(rfc3339Nano(s, 669794202)).to.equal(T);
    expect(rfc3339Nano(s, 500000000)).to.equal('2016-10-06T00:17:09.5Z');
    expect(rfc3339Nano(s, 0)).to.equal('2016-10-06T00:17:09Z');
    expect(parseRfc3339Nano(T)).to.deep.equal([s, 669794202]);
    expect(parseRfc3339Nano('2016-10-06T02:17:09.5+02:00')).to.deep.equal([s, 500000000]);
    expect(parseRfc3339Nano('yesterday')).to.equal(undefined);
  });

  it('orders timestamps by time, not by text', () => {
    expect(compareTimestamps('2016-10-06T00:17:09.5Z', '2016-10-06T00:17:09.49Z')).to.equal(1);
    expect(compareTimestamps('2016-10-06T00:17:09Z', '2016-10-06T00:17:09.000000001Z')).to.equal(-1);
    expect(compareTimestamps(T, T)).to.equal(0);
  });

  it('writes one CRI line: timestamp, stream, tag, message', () => {
    expect(formatLogLine(T, 'stdout', false, 'hello world').toString()).to.equal(`${T} stdout F hello world\n`);
    expect(formatLogLine(T, 'stderr', true, Buffer.from('part')).toString()).to.equal(`${T} stderr P part\n`);
  });

  it('splits long lines into P records ending with an F record', () => {
    const recs = formatLogRecords(T, 'stdout', Buffer.from('abcdefghij'), true, 4).map(String);
    expect(recs).to.deep.equal([`${T} stdout P abcd\n`, `${T} stdout P efgh\n`, `${T} stdout F ij\n`]);
    const parsed = recs.map((l) => parseLogLine(l)!);
    expect(joinRecords(parsed)).to.deep.equal([{ stream: 'stdout', line: 'abcdefghij' }]);
  });

  it('parses lines and rejects malformed ones', () => {
    expect(parseLogLine(`${T} stderr F  two spaces`)).to.deep.equal({ timestamp: T, stream: 'stderr', partial: false, message: ' two spaces' });
    expect(parseLogLine(`${T} stdout F `)?.message).to.equal('');
    expect(parseLogLine(`${T} stdin F x`)).to.equal(undefined);
    expect(parseLogLine(`${T} stdout X x`)).to.equal(undefined);
    expect(parseLogLine('not-a-time stdout F x')).to.equal(undefined);
  });

  it('joins records per stream, interleaved', () => {
    const recs = [
      { timestamp: T, stream: 'stdout' as const, partial: true, message: 'a' },
      { timestamp: T, stream: 'stderr' as const, partial: false, message: 'e' },
      { timestamp: T, stream: 'stdout' as const, partial: false, message: 'b' },
    ];
    expect(joinRecords(recs)).to.deep.equal([{ stream: 'stderr', line: 'e' }, { stream: 'stdout', line: 'ab' }]);
  });

  it('splits Docker timestamped output across chunks into lines', () => {
    const got: [string, string, boolean][] = [];
    const s = new TimestampedLineSplitter((ts, line, complete) => got.push([ts, line.toString(), complete]));
    s.push(Buffer.from(`${T} one\n2016-10-06T00:17:10Z t`));
    s.push(Buffer.from('wo\n2016-10-06T00:17:11Z tail'));
    s.end();
    expect(got).to.deep.equal([
      [T, 'one', true],
      ['2016-10-06T00:17:10Z', 'two', true],
      ['2016-10-06T00:17:11Z', 'tail', true],
    ]);
  });

  it('lays out files as the kubelet does', () => {
    expect(path.join(podLogDirectory('/var/log/pods', 'default', 'web-0', 'u1'), containerLogPath('nginx', 2))).to.equal(
      '/var/log/pods/default_web-0_u1/nginx/2.log',
    );
  });

  it('finds where to resume: the last record\'s timestamp, as Docker\'s `since`', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cri-log-'));
    try {
      const f = path.join(dir, '0.log');
      expect(lastTimestamp(f)).to.equal(undefined);
      writeFileSync(f, `2016-10-06T00:17:08Z stdout F a\n${T} stderr F b\n`);
      expect(lastTimestamp(f)).to.equal(T);
      expect(sinceParam(T)).to.equal(`${Date.UTC(2016, 9, 6, 0, 17, 9) / 1000}.669794202`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
