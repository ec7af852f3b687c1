// The tcpSocket probe, as upstream's pkg/probe/tcp: success when a connection
// opens within the timeout (it is closed at once), failure otherwise.
import net from 'node:net';
import { joinHostPort } from '../../lib/ip.ts';
import { dialError, type ProbeOutcome } from './outcome.ts';

/** One tcpSocket probe. Never throws. */
export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  const addr = joinHostPort(host, port);
  return new Promise<ProbeOutcome>((resolve) => {
    const sock = net.connect({ host, port });
    const finish = (o: ProbeOutcome) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ result: 'failure', output: `dial tcp ${addr}: i/o timeout` }), timeoutMs);
    sock.once('connect', () => finish({ result: 'success', output: '' }));
    sock.once('error', (err) => finish({ result: 'failure', output: dialError(addr, err) }));
  });
}
