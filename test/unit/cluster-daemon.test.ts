import { expect } from 'chai';
import net from 'node:net';
import { tcpAccepts } from '../../cluster/daemon.ts';

describe('cluster/daemon tcpAccepts: is a port open yet', () => {
  it('is true for a listening port and false once it is closed', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    expect(await tcpAccepts('127.0.0.1', port)).to.equal(true);
    await new Promise((r) => server.close(r));
    expect(await tcpAccepts('127.0.0.1', port)).to.equal(false);
  });
});
