// The backend of the userspace-mode benchmark, run inside a bench netns:
//   node echo-server.ts HOST ECHO_PORT SINK_PORT
// ECHO_PORT echoes every byte back and ends when the client ends.
// SINK_PORT discards what it receives; when the client ends its writes it
// answers with the byte count (decimal) and closes.
// Prints "ready" once both listen; stops on SIGTERM.
import net from 'node:net';

const [host = '127.0.0.1', echoPort = '8080', sinkPort = '8081'] = process.argv.slice(2);

const echo = net.createServer({ allowHalfOpen: true }, (sock) => {
  sock.on('error', () => sock.destroy());
  sock.pipe(sock);
});
const sink = net.createServer({ allowHalfOpen: true }, (sock) => {
  let bytes = 0;
  sock.on('error', () => sock.destroy());
  sock.on('data', (b: Buffer) => {
    bytes += b.length;
  });
  sock.on('end', () => sock.end(String(bytes)));
});

const listen = (s: net.Server, port: number) =>
  new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });

await listen(echo, Number(echoPort));
await listen(sink, Number(sinkPort));
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  echo.close();
  sink.close();
  process.exit(0);
});
