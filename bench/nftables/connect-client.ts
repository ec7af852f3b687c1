// First-packet latency through the proxy rules, run inside a bench netns:
//   node connect-client.ts HOST PORT SAMPLES
// Opens SAMPLES sequential TCP connections and times each from connect() to
// the connection being established (SYN out through the nat rules, SYN-ACK
// back), then closes it. A first packet of a connection is the one that
// walks the DNAT rules; later packets follow conntrack.
// Prints one JSON line {connectMs: number[]}.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [host = '127.0.0.1', port = '80', samples = '1000'] = process.argv.slice(2);

function connectOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const sock = net.connect({ host, port: Number(port) }, () => {
      const ms = performance.now() - start;
      sock.destroy();
      resolve(ms);
    });
    sock.setTimeout(5000, () => sock.destroy(new Error(`connect to ${host}:${port} timed out`)));
    sock.on('error', reject);
  });
}

for (let i = 0; i < 50; i++) await connectOnce(); // warm-up: JIT, ARP
const connectMs: number[] = [];
for (let i = 0; i < Number(samples); i++) connectMs.push(await connectOnce());
process.stdout.write(JSON.stringify({ connectMs }) + '\n');
