import { expect } from 'chai';
import type Dockerode from 'dockerode';
import { PassThrough } from 'node:stream';
import { type ContainerEvent, parseEvent, watchContainerEvents } from '../../cri/docker/events.ts';
import { FakeClock, settle } from '../fakes/clock.ts';

const ev = (action: string, id: string, timeNano: number, attrs: Record<string, string> = {}) =>
  JSON.stringify({
    Type: 'container',
    Action: action,
    Actor: { ID: id, Attributes: { 'io.nodelet.managed': 'true', 'io.kubernetes.docker.type': 'container', 'io.kubernetes.sandbox.id': 'sb1', ...attrs } },
    timeNano,
  }) + '\n';

describe('cri/docker/events', () => {
  it('parses managed container events and ignores others', () => {
    expect(parseEvent(ev('exec_start: sh -c true', 'c1', 5))).to.deep.equal({
      action: 'exec_start', containerId: 'c1', type: 'container', podSandboxId: 'sb1', timeNano: 5,
    });
    expect(parseEvent(ev('die', 'c1', 5, { 'io.nodelet.managed': 'false' }))).to.equal(undefined);
    expect(parseEvent('{"Type":"network","Action":"connect"}')).to.equal(undefined);
    expect(parseEvent('not json')).to.equal(undefined);
  });

  it('splits events across chunks, reconnects with since after a break, and asks for a relist each time', async () => {
    const streams: PassThrough[] = [];
    const queries: Record<string, unknown>[] = [];
    const docker = {
      getEvents: async (q: Record<string, unknown>) => {
        queries.push(q);
        const s = new PassThrough();
        streams.push(s);
        return s;
      },
    } as unknown as Pick<Dockerode, 'getEvents'>;
    const got: ContainerEvent[] = [];
    let relists = 0;
    const ac = new AbortController();
    const clock = new FakeClock();
    const done = watchContainerEvents(docker, (e) => got.push(e), { signal: ac.signal, onRelist: () => relists++, clock });
    await settle();
    expect(relists).to.equal(1);
    expect(queries[0]!.since).to.equal(undefined);
    const line = ev('start', 'c1', 1_700_000_000_123_456_789);
    streams[0]!.write(line.slice(0, 20));
    streams[0]!.write(line.slice(20) + ev('die', 'c1', 1_700_000_001_000_000_000).slice(0, 10));
    await settle();
    expect(got.map((e) => e.action)).to.deep.equal(['start']);
    streams[0]!.destroy(); // dockerd restarted
    await settle();
    await clock.advance(1000);
    await settle();
    expect(queries).to.have.length(2);
    expect(queries[1]!.since).to.match(/^1700000000\.\d{9}$/);
    expect(relists).to.equal(2);
    streams[1]!.write(ev('oom', 'c1', 1_700_000_002_000_000_000));
    await settle();
    expect(got.map((e) => e.action)).to.deep.equal(['start', 'oom']);
    ac.abort();
    await done;
  });
});
