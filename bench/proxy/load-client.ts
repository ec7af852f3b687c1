// The client of the userspace-mode benchmark, run inside a bench netns:
//   node load-client.ts HOST ECHO_PORT SINK_PORT REQUESTS BULK_SECONDS
// (1) REQUESTS sequential requests, each a new TCP connection: connect,
//     send 64 bytes, read the 64 echoed, close; per-request latency in ms.
// (2) one connection to SINK_PORT written as fast as it drains for
//     BULK_SECONDS, then ended; the server's byte count over the elapsed
//     time is the throughput.
// Prints one JSON line {latencyMs: number[], bulk: {bytes, seconds}}.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [host = '127.0.0.1', echoPort = '8080', sinkPort = '8081', reqs = '2000', secs = '5'] = process.argv.slice(2);
const PAYLOAD = Buffer.alloc(64, 0x61);
const CHUNK = Buffer.alloc(64 * 1024, 0x62);

function request(): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let got = 0;
    const sock = net.connect({ host, port: Number(echoPort) }, () => sock.write(PAYLOAD));
    sock.setNoDelay(true);
    sock.setTimeout(5000, () => sock.destroy(new Error('request timed out')));
    sock.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= PAYLOAD.length) {
        const ms = performance.now() - start;
        sock.destroy();
        resolve(ms);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`closed after ${got} bytes`)));
  });
}

function bulk(seconds: number): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port: Number(sinkPort) });
    let start = 0;
    let reply = '';
    let stop = false;
    const pump = () => {
      while (!stop) {
        if (performance.now() - start >= seconds * 1000) {
          stop = true;
          sock.end();
          return;
        }
        if (!sock.write(CHUNK)) return; // resume on 'drain'
      }
    };
    sock.on('connect', () => {
      start = performance.now();
      pump();
    });
    sock.on('drain', pump);
    sock.on('data', (b: Buffer) => {
      reply += b.toString();
    });
    sock.on('end', () => resolve({ bytes: Number(reply), seconds: (performance.now() - start) / 1000 }));
    sock.on('error', reject);
  });
}

const latencyMs: number[] = [];
for (let i = 0; i < 100; i++) await request(); // warm-up: JIT, ARP, conntrack
for (let i = 0; i < Number(reqs); i++) latencyMs.push(await request());
const b = await bulk(Number(secs));
process.stdout.write(JSON.stringify({ latencyMs, bulk: b }) + '\n');
