// The sockets of the userspace proxy, as upstream's tcpProxySocket and
// udpProxySocket (pkg/proxy/userspace/proxysocket.go): one listener per
// service port; each new TCP connection or UDP client gets an endpoint from
// the injected chooser and its bytes are relayed both ways: by splice(2) in
// the kernel when the native relay is built (splicer.ts; Go's io.Copy between
// TCP connections, which upstream used, does the same), else copied in JS.
//
// TCP: the inbound connection is held paused while a backend is dialled;
// a failed dial asks the chooser again with resetAffinity, with upstream's
// growing timeouts (250 ms, 500 ms, 1 s, 2 s: four tries). No endpoint, or
// four failures, closes the client at once. Half-close is passed on: when
// one side ends its writes, the other side's writes are ended too, and each
// direction drains on its own. An error on either side destroys both.
// Closing the listener leaves established connections alone (as upstream),
// unless close(true).
//
// UDP: a session per client address, with its own socket towards the chosen
// endpoint; it ends after idleTimeoutMs without packets either way (the
// Clock decides, so tests drive expiry with a FakeClock).
import dgram from 'node:dgram';
import net from 'node:net';
import type { Clock } from '../../lib/clock.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { Protocol } from '../types.ts';
import { ECANCELED, type Splicer, socketFd } from './splicer.ts';

/** Upstream's endpointDialTimeouts: one try per entry. */
export const DIAL_TIMEOUTS_MS: readonly number[] = [250, 500, 1000, 2000];

/** Upstream's default --udp-timeout. */
export const DEFAULT_UDP_IDLE_TIMEOUT_MS = 250;

/** Picks the endpoint ("ip:port") for a new connection or UDP session; undefined = none. */
export type Chooser = (clientIP: string, resetAffinity: boolean) => string | undefined;

export interface ProxySocket {
  readonly protocol: Protocol;
  /** The port it listens on. */
  readonly port: number;
  /** Open TCP connections or live UDP sessions. */
  readonly active: number;
  /** Stops listening. `dropActive` also ends the open connections or sessions (UDP sessions always end). */
  close(dropActive?: boolean): Promise<void>;
}

export interface SocketOptions {
  log: Logger;
  clock: Clock;
  dialTimeoutsMs?: readonly number[];
  udpIdleTimeoutMs?: number;
  /** The native relay (see splicer.ts); without it TCP bytes are copied in JS. */
  splicer?: Splicer | undefined;
}

/** "10.0.0.1:80" -> ['10.0.0.1', 80] (IPv4 only, as the rest of proxy/). */
export function splitHostPort(ep: string): [string, number] {
  const i = ep.lastIndexOf(':');
  return [ep.slice(0, i), Number(ep.slice(i + 1))];
}

/** An IPv4-mapped IPv6 address as plain IPv4, so affinity keys do not depend on the socket family. */
export function clientIP(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

export async function openProxySocket(protocol: Protocol, host: string, port: number, choose: Chooser, opts: SocketOptions): Promise<ProxySocket> {
  if (protocol === 'TCP') return TcpProxySocket.open(host, port, choose, opts);
  if (protocol === 'UDP') return UdpProxySocket.open(host, port, choose, opts);
  throw new NodeletError('PROXY_UNSUPPORTED_PROTOCOL', `userspace proxy: ${protocol} is not supported`);
}

function dial(endpoint: string, timeoutMs: number): Promise<net.Socket> {
  const [host, port] = splitHostPort(endpoint);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, allowHalfOpen: true });
    // Nothing is read until the relay starts (the kernel relay cannot see what Node has buffered).
    sock.pause();
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new NodeletError('PROXY_DIAL_TIMEOUT', `dial ${endpoint}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(new NodeletError('PROXY_DIAL_FAILED', `dial ${endpoint}`, { cause: err }));
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeListener('error', onError);
      resolve(sock);
    });
  });
}

/** Copies both ways in JS until both directions have ended; an error on either side ends both. */
function copyBothWays(a: net.Socket, b: net.Socket): void {
  const kill = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
  // pipe() ends the destination's writes (a FIN) when the source ends: half-close passes through.
  a.pipe(b);
  b.pipe(a);
  const onClose = (hadError: boolean) => {
    if (hadError) kill();
  };
  a.once('close', onClose);
  b.once('close', onClose);
}

/**
 * Relays both ways until both directions have ended, through the kernel
 * (splice) when the native relay is there, else by copying in JS. Both
 * sockets come paused, so Node has read nothing the kernel relay would skip.
 */
function relay(a: net.Socket, b: net.Socket, splicer: Splicer | undefined, log: Logger): void {
  const fa = socketFd(a);
  const fb = socketFd(b);
  if (splicer && fa !== undefined && fb !== undefined && a.readableLength === 0 && b.readableLength === 0) {
    const done = (errno: number) => {
      if (errno !== 0 && errno !== ECANCELED) log.debug('userspace proxy: connection ended with an error', { errno });
      a.destroy();
      b.destroy();
    };
    let id: number | undefined;
    try {
      id = splicer.start(fa, fb, done);
    } catch (err) {
      log.debug('userspace proxy: splice relay refused the connection; copying it instead', { error: describeError(err) });
    }
    if (id !== undefined) {
      const relayId = id;
      // The relay holds its own fds: a socket closed here (close(true), an error) must end it too.
      const stop = () => splicer.abort(relayId);
      for (const s of [a, b]) {
        s.once('close', stop);
        s.on('error', () => s.destroy());
      }
      return;
    }
  }
  copyBothWays(a, b);
}

class TcpProxySocket implements ProxySocket {
  readonly protocol = 'TCP' as const;
  readonly port: number;
  private readonly server: net.Server;
  /** Accepted client connections. */
  private readonly conns = new Set<net.Socket>();
  /** Their backend connections. */
  private readonly backends = new Set<net.Socket>();

  private constructor(server: net.Server, port: number) {
    this.server = server;
    this.port = port;
  }

  static async open(host: string, port: number, choose: Chooser, opts: SocketOptions): Promise<TcpProxySocket> {
    // Paused so nothing is read before a backend is there; half-open so a client's FIN is passed on, not answered.
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new NodeletError('PROXY_LISTEN_FAILED', `listen tcp ${host}:${port}`, { cause: err });
    });
    const addr = server.address() as net.AddressInfo;
    const self = new TcpProxySocket(server, addr.port);
    const timeouts = opts.dialTimeoutsMs ?? DIAL_TIMEOUTS_MS;
    server.on('error', (err) => opts.log.error('userspace proxy listener error', { port: addr.port, error: describeError(err) }));
    server.on('connection', (inbound) => {
      self.conns.add(inbound);
      inbound.once('close', () => self.conns.delete(inbound));
      void self.handle(inbound, choose, timeouts, opts);
    });
    return self;
  }

  get active(): number {
    return this.conns.size;
  }

  private async handle(inbound: net.Socket, choose: Chooser, timeouts: readonly number[], opts: SocketOptions): Promise<void> {
    const { log } = opts;
    // The client may go away while we dial; remember, so the backend is not left open.
    let gone = false;
    const onGone = () => {
      gone = true;
    };
    inbound.on('error', onGone);
    inbound.once('close', onGone);
    const from = clientIP(inbound.remoteAddress);
    let reset = false;
    let outbound: net.Socket | undefined;
    for (const timeoutMs of timeouts) {
      const endpoint = choose(from, reset);
      if (endpoint === undefined) {
        log.debug('userspace proxy: no endpoints; closing the connection', { port: this.port, client: from });
        break;
      }
      try {
        outbound = await dial(endpoint, timeoutMs);
        break;
      } catch (err) {
        log.info('userspace proxy: dial failed; trying the next endpoint', { endpoint, error: describeError(err) });
        reset = true;
      }
    }
    inbound.removeListener('error', onGone);
    inbound.removeListener('close', onGone);
    if (!outbound || gone) {
      outbound?.destroy();
      inbound.destroy();
      return;
    }
    this.backends.add(outbound);
    const out = outbound;
    out.once('close', () => this.backends.delete(out));
    relay(inbound, out, opts.splicer, log);
  }

  async close(dropActive = false): Promise<void> {
    // server.close()'s callback waits for every connection; the listening socket itself closes now.
    this.server.close();
    if (dropActive) for (const c of [...this.conns, ...this.backends]) c.destroy();
    await new Promise<void>((r) => setImmediate(r));
  }
}

interface UdpSession {
  backend: dgram.Socket;
  endpoint: string;
  lastActive: number;
  stop: AbortController;
}

class UdpProxySocket implements ProxySocket {
  readonly protocol = 'UDP' as const;
  readonly port: number;
  private readonly sock: dgram.Socket;
  private readonly sessions = new Map<string, UdpSession>();
  private readonly choose: Chooser;
  private readonly opts: SocketOptions;
  private readonly idleMs: number;
  private closed = false;

  private constructor(sock: dgram.Socket, port: number, choose: Chooser, opts: SocketOptions) {
    this.sock = sock;
    this.port = port;
    this.choose = choose;
    this.opts = opts;
    this.idleMs = opts.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
  }

  static async open(host: string, port: number, choose: Chooser, opts: SocketOptions): Promise<UdpProxySocket> {
    const sock = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: host, port, exclusive: true }, () => {
        sock.removeListener('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      sock.close();
      throw new NodeletError('PROXY_LISTEN_FAILED', `listen udp ${host}:${port}`, { cause: err });
    });
    const self = new UdpProxySocket(sock, sock.address().port, choose, opts);
    sock.on('error', (err) => opts.log.error('userspace proxy udp socket error', { port: self.port, error: describeError(err) }));
    sock.on('message', (msg, rinfo) => self.fromClient(msg, rinfo));
    return self;
  }

  get active(): number {
    return this.sessions.size;
  }

  private fromClient(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}:${rinfo.port}`;
    let s = this.sessions.get(key);
    if (!s) {
      if (this.closed) return;
      const endpoint = this.choose(clientIP(rinfo.address), false);
      if (endpoint === undefined) {
        this.opts.log.debug('userspace proxy: no endpoints; dropping a datagram', { port: this.port, client: key });
        return;
      }
      s = this.open(key, rinfo, endpoint);
    }
    s.lastActive = this.opts.clock.now();
    const [host, port] = splitHostPort(s.endpoint);
    s.backend.send(msg, port, host, (err) => {
      if (err) this.opts.log.debug('userspace proxy: udp send to endpoint failed', { endpoint: s.endpoint, error: describeError(err) });
    });
  }

  private open(key: string, client: dgram.RemoteInfo, endpoint: string): UdpSession {
    const [host, port] = splitHostPort(endpoint);
    const backend = dgram.createSocket({ type: 'udp4' });
    const s: UdpSession = { backend, endpoint, lastActive: this.opts.clock.now(), stop: new AbortController() };
    backend.on('error', (err) => {
      this.opts.log.debug('userspace proxy: udp endpoint socket error', { endpoint, error: describeError(err) });
      this.end(key, s);
    });
    backend.on('message', (msg, from) => {
      // Only the chosen endpoint answers for this session.
      if (from.address !== host || from.port !== port || this.closed) return;
      s.lastActive = this.opts.clock.now();
      this.sock.send(msg, client.port, client.address);
    });
    this.sessions.set(key, s);
    void this.expire(key, s);
    return s;
  }

  private async expire(key: string, s: UdpSession): Promise<void> {
    const clock = this.opts.clock;
    while (!s.stop.signal.aborted) {
      const idle = clock.now() - s.lastActive;
      if (idle >= this.idleMs) break;
      await clock.sleep(this.idleMs - idle, s.stop.signal);
    }
    this.end(key, s);
  }

  private end(key: string, s: UdpSession): void {
    if (this.sessions.get(key) === s) this.sessions.delete(key);
    if (s.stop.signal.aborted) return;
    s.stop.abort();
    try {
      s.backend.close();
    } catch {
      // already closed by an error
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [key, s] of this.sessions) this.end(key, s);
    await new Promise<void>((r) => this.sock.close(() => r()));
  }
}
