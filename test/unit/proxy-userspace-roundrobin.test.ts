// The userspace proxy's round-robin balancer, with a FakeClock and a fixed
// random source. Endpoint addresses are in 10.244.0.0/16 (RFC 1918), clients
// in 192.0.2.0/24 (TEST-NET-1, RFC 5737).
import { expect } from 'chai';
import { LoadBalancerRR, shuffle } from '../../proxy/userspace/roundrobin.ts';
import { FakeClock } from '../fakes/clock.ts';

const A = '10.244.1.1:8080';
const B = '10.244.1.2:8080';
const C = '10.244.1.3:8080';
const SVC = 'ns1/web:http';

/** random() = 0.999...: Fisher-Yates swaps each element with itself, so the order is kept. */
const keepOrder = () => 0.999999;

describe('proxy userspace LoadBalancerRR', () => {
  let clock: FakeClock;
  let lb: LoadBalancerRR;

  beforeEach(() => {
    clock = new FakeClock();
    lb = new LoadBalancerRR(clock, keepOrder);
  });

  it('shuffle is a permutation driven by the random source', () => {
    expect(shuffle([1, 2, 3, 4], keepOrder)).to.deep.equal([1, 2, 3, 4]);
    // random() = 0 swaps each element with the first: [1,2,3,4] -> [4,2,3,1] -> [3,2,4,1] -> [2,3,4,1].
    expect(shuffle([1, 2, 3, 4], () => 0)).to.deep.equal([2, 3, 4, 1]);
  });

  it('walks the endpoints in turn and wraps around', () => {
    lb.setService(SVC, 'None', 0);
    lb.setEndpoints(SVC, [A, B, C]);
    const got = Array.from({ length: 7 }, () => lb.next(SVC, '192.0.2.1'));
    expect(got).to.deep.equal([A, B, C, A, B, C, A]);
  });

  it('no service or no endpoints gives undefined', () => {
    expect(lb.next('ns1/none', '192.0.2.1')).to.equal(undefined);
    lb.setService(SVC, 'None', 0);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(undefined);
    expect(lb.hasEndpoints(SVC)).to.equal(false);
  });

  it('the same set again keeps the walk; a changed set is shuffled and starts over', () => {
    lb = new LoadBalancerRR(clock, () => 0);
    lb.setService(SVC, 'None', 0);
    lb.setEndpoints(SVC, [A, B, C]);
    expect(lb.endpoints(SVC)).to.deep.equal([B, C, A]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(B);
    lb.setEndpoints(SVC, [C, A, B]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(C);
    lb.setEndpoints(SVC, [A, B]);
    expect(lb.endpoints(SVC)).to.deep.equal([B, A]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(B);
  });

  it('ClientIP affinity: a client keeps its endpoint, other clients go round', () => {
    lb.setService(SVC, 'ClientIP', 60);
    lb.setEndpoints(SVC, [A, B, C]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    expect(lb.next(SVC, '192.0.2.2')).to.equal(B);
    for (let i = 0; i < 5; i++) expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    expect(lb.next(SVC, '192.0.2.3')).to.equal(C);
    expect(lb.stickyClients(SVC)).to.equal(3);
  });

  it('ClientIP affinity ends after the timeout without use, and each use extends it', async () => {
    lb.setService(SVC, 'ClientIP', 60);
    lb.setEndpoints(SVC, [A, B, C]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    await clock.advance(59_000);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    await clock.advance(59_000);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    await clock.advance(60_000);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(B);
  });

  it('resetAffinity (a failed dial) moves the client to the next endpoint and remembers that one', () => {
    lb.setService(SVC, 'ClientIP', 60);
    lb.setEndpoints(SVC, [A, B, C]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    expect(lb.next(SVC, '192.0.2.1', true)).to.equal(B);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(B);
  });

  it('a removed endpoint loses its clients; stale records are cleaned up', async () => {
    lb.setService(SVC, 'ClientIP', 60);
    lb.setEndpoints(SVC, [A, B]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    expect(lb.next(SVC, '192.0.2.2')).to.equal(B);
    lb.setEndpoints(SVC, [B, C]);
    expect(lb.stickyClients(SVC)).to.equal(1);
    expect(lb.next(SVC, '192.0.2.2')).to.equal(B);
    await clock.advance(60_000);
    lb.cleanupStaleStickySessions();
    expect(lb.stickyClients(SVC)).to.equal(0);
  });

  it('ttl 0 means the 3-hour default', async () => {
    lb.setService(SVC, 'ClientIP', 0);
    lb.setEndpoints(SVC, [A, B]);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    await clock.advance(10_799_000);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(A);
    await clock.advance(10_800_000);
    expect(lb.next(SVC, '192.0.2.1')).to.equal(B);
  });
});
