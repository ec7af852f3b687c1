// The kubelet HTTPS API on :10250 (upstream pkg/kubelet/server): every request
// is authenticated (client certificate or bearer token; 401 otherwise) and
// authorized by SubjectAccessReview (403), then served: /healthz, /pods,
// /metrics, /containerLogs, /run, and the SPDY upgrades for /exec, /attach and
// /portForward that the API server makes for kubectl.
import { stat } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Counter, type Registry } from 'prom-client';
import { CONTAINER_RUNNING } from '../../cri/api.ts';
import type { ImageService, RuntimeService } from '../../cri/runtime.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { drained } from '../../lib/streams.ts';
import { forbiddenMessage, requestAttributes, type PeerCertificate, type RequestAuthenticator, type RequestAuthorizer } from './auth.ts';
import { parseLogOptions, readLogFile } from './logs.ts';
import { PortForwardHandler } from './portforward.ts';
import { containerUsage, readNodeUsage, renderResourceMetrics, type NodeUsage } from './resourcemetrics.ts';
import {
  encodeStatus,
  expectedStreams,
  internalErrorStatus,
  negotiateProtocol,
  parseStreamOptions,
  PORTFORWARD_PROTOCOLS,
  pumpSession,
  REMOTECOMMAND_PROTOCOLS,
  splitProtocols,
  StreamCollector,
} from './remotecommand.ts';
import { buildSummary, CpuRates, ProcPodNetwork, readNodeInput, statFs, type InterfaceStats, type NodeInput, type PodInput } from './summary.ts';
import { findPod, hasContainer, logContainer, parseRoute, readySandbox, runningContainer, type ContainerRoute, type NodePods, type Route } from './routes.ts';
import { SpdyConnection, type SpdyStream, type Transport } from './spdy.ts';

export type ServerRuntime = Pick<RuntimeService, 'exec' | 'attach' | 'portForward' | 'containerStatus' | 'execSync' | 'listContainerStats'> & Pick<ImageService, 'imageFsInfo'>;

export interface KubeletServerDeps {
  nodeName: string;
  pods: NodePods;
  runtime: ServerRuntime;
  authn: Pick<RequestAuthenticator, 'authenticate'>;
  authz: Pick<RequestAuthorizer, 'authorize'>;
  registry: Registry;
  clock: Clock;
  log: Logger;
  /** Node CPU and memory for /metrics/resource; default: /proc. */
  nodeUsage?: (nowMs: number) => NodeUsage | undefined;
  /** The node's side of /stats/summary; default: /proc and statfs of rootDir. */
  summaryNode?: (nowMs: number) => Omit<NodeInput, 'imageFs'>;
  /** Network counters per sandbox ID; default: /proc/PID/net/dev of the sandbox's process. */
  podNetwork?: (sandboxIds: readonly string[]) => Map<string, InterfaceStats[]>;
  /** The kubelet root directory (the node filesystem of /stats/summary); default '/'. */
  rootDir?: string;
}

export interface ServerTLS {
  cert: string | Buffer;
  key: string | Buffer;
  /** PEM of the CA(s) that client certificates must chain to. */
  clientCA: string | Buffer;
}

/** Where an answer goes: a normal response, or the raw socket of an upgrade request. */
interface Reply {
  send(status: number, body: string, headers?: Record<string, string | string[]>): void;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  422: 'Unprocessable Entity', 500: 'Internal Server Error',
};

function responseReply(res: ServerResponse): Reply {
  return {
    send(status, body, headers = {}) {
      if (res.headersSent) return void res.end();
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', ...headers }).end(body);
    },
  };
}

function socketReply(socket: Duplex): Reply {
  return {
    send(status, body, headers = {}) {
      const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`, 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
      for (const [k, v] of Object.entries(headers)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
      socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
    },
  };
}

/** Upstream's path label: the first path segment ("exec", "containerLogs", ...). */
function pathLabel(pathname: string): string {
  const first = pathname.split('/')[1] ?? '';
  return ['healthz', 'pods', 'metrics', 'containerLogs', 'exec', 'attach', 'portForward', 'run', 'stats', 'logs'].includes(first) ? first : 'other';
}

export class KubeletServer {
  private readonly d: KubeletServerDeps;
  private readonly server: https.Server;
  private readonly conns = new Set<SpdyConnection>();
  private readonly requests: Counter<'method' | 'path' | 'server_type' | 'long_running'>;
  private readonly cpuRates = new CpuRates();
  private readonly clientCA: string | Buffer;
  private readonly podNetwork: (sandboxIds: readonly string[]) => Map<string, InterfaceStats[]>;

  constructor(deps: KubeletServerDeps, tls: ServerTLS) {
    this.d = deps;
    const procNet = new ProcPodNetwork();
    this.podNetwork = deps.podNetwork ?? ((ids) => procNet.read(ids));
    this.requests = new Counter({
      name: 'kubelet_http_requests_total',
      help: 'Number of the http requests received since the server started',
      labelNames: ['method', 'path', 'server_type', 'long_running'],
      registers: [deps.registry],
    });
    this.clientCA = tls.clientCA;
    this.server = https.createServer({ cert: tls.cert, key: tls.key, ca: tls.clientCA, requestCert: true, rejectUnauthorized: false });
    this.server.on('request', (req, res) => {
      this.onRequest(req, res).catch((err) => {
        this.d.log.warn('kubelet API request failed', { path: req.url, err: describeError(err) });
        responseReply(res).send(500, describeError(err));
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => undefined);
      this.onUpgrade(req, socket, head).catch((err) => {
        this.d.log.warn('kubelet API stream failed', { path: req.url, err: describeError(err) });
        if (socket.writable) socketReply(socket).send(500, describeError(err));
      });
    });
    this.server.on('tlsClientError', () => undefined);
  }

  listen(port: number, host = '0.0.0.0'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  /** Serves new connections with another certificate (the issued one replacing the self-signed one). */
  setCertificate(cert: string | Buffer, key: string | Buffer): void {
    this.server.setSecureContext({ cert, key, ca: this.clientCA });
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.close(0);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Authenticates and authorizes; on refusal answers and returns false. */
  private async admit(req: IncomingMessage, pathname: string, reply: Reply): Promise<boolean> {
    const sock = req.socket as TLSSocket;
    let cert: PeerCertificate | undefined;
    if (sock.authorized) {
      const pc = sock.getPeerCertificate();
      if (pc && pc.subject) cert = { authorized: true, cn: pc.subject.CN as string | undefined, o: pc.subject.O as string | string[] | undefined };
    }
    const authn = await this.d.authn.authenticate({ cert, authorization: req.headers.authorization });
    if (!authn.user) {
      if (authn.error) this.d.log.warn('unable to authenticate the request', { err: authn.error });
      reply.send(401, 'Unauthorized');
      return false;
    }
    const attrs = requestAttributes(req.method ?? 'GET', pathname, this.d.nodeName);
    const authz = await this.d.authz.authorize(authn.user, attrs);
    if (authz.allowed) return true;
    if (authz.error) {
      this.d.log.warn('authorization error', { user: authn.user.name, err: authz.error });
      reply.send(500, `Authorization error (user=${authn.user.name}, verb=${attrs[0]?.verb}, resource=nodes, subresource=${attrs[0]?.subresource})`);
      return false;
    }
    reply.send(403, forbiddenMessage(authn.user, attrs));
    return false;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const route = parseRoute(url.pathname);
    const reply = responseReply(res);
    const longRunning = ['containerLogs', 'exec', 'attach', 'portForward'].includes(route.kind);
    this.requests.inc({ method: req.method ?? 'GET', path: pathLabel(url.pathname), server_type: 'readwrite', long_running: String(longRunning) });
    if (!(await this.admit(req, url.pathname, reply))) return;
    switch (route.kind) {
      case 'healthz':
        return reply.send(200, 'ok');
      case 'pods': {
        const body = JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: this.d.pods.pods() });
        return reply.send(200, body, { 'content-type': 'application/json' });
      }
      case 'metrics':
        return reply.send(200, await this.d.registry.metrics(), { 'content-type': this.d.registry.contentType });
      case 'resourceMetrics':
        return reply.send(200, await this.resourceMetrics(), { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      case 'statsSummary': {
        const only = url.searchParams.get('only_cpu_and_memory') === 'true';
        return reply.send(200, JSON.stringify(await this.statsSummary(only), null, 2), { 'content-type': 'application/json' });
      }
      case 'containerLogs':
        return this.containerLogs(route, url.searchParams, res);
      case 'run':
        return this.run(route, url.searchParams, reply);
      case 'exec':
      case 'attach':
      case 'portForward':
        return reply.send(400, `unable to upgrade: missing upgrade headers in request: ${JSON.stringify(req.headers.upgrade ?? '')}`);
      default:
        return reply.send(404, '404 page not found');
    }
  }

  private async containerLogs(route: Extract<Route, { kind: 'containerLogs' }>, q: URLSearchParams, res: ServerResponse): Promise<void> {
    const reply = responseReply(res);
    const parsed = parseLogOptions(q, this.d.clock.now());
    if (!parsed.ok) return reply.send(parsed.status, parsed.message);
    const opts = parsed.options;
    const pod = findPod(this.d.pods.pods(), route.namespace, route.pod);
    if (!pod) return reply.send(404, `pod "${route.pod}" does not exist`);
    if (!hasContainer(pod, route.container)) return reply.send(404, `container "${route.container}" not found in pod "${route.pod}"`);
    const found = logContainer(this.d.pods.runtimePod(pod.metadata?.uid ?? ''), route.pod, route.container, opts.previous);
    if ('error' in found) return reply.send(400, found.error);
    const id = found.container.id;
    const st = await this.d.runtime.containerStatus(id).catch(() => undefined);
    if (!st?.status.logPath) return reply.send(400, `container "${route.container}" in pod "${route.pod}" has no log file`);
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const start = () => {
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
    };
    // Follow streams: send the headers now so the client sees the response start.
    if (opts.follow) {
      start();
      res.flushHeaders();
    }
    try {
      await readLogFile(
        st.status.logPath,
        opts,
        {
          write: async (buf) => {
            start();
            if (!res.write(buf)) await drained(res);
          },
        },
        {
          clock: this.d.clock,
          signal: abort.signal,
          isRunning: async () => (await this.d.runtime.containerStatus(id).catch(() => undefined))?.status.state === CONTAINER_RUNNING,
        },
      );
    } catch (err) {
      if (!res.headersSent) return reply.send(400, `failed to read log file ${st.status.logPath}: ${describeError(err)}`);
      this.d.log.debug('log stream ended with an error', { err: describeError(err) });
    }
    start();
    res.end();
  }

  private async resourceMetrics(): Promise<string> {
    const started = new Map<string, number>();
    for (const p of this.d.pods.pods()) {
      for (const c of this.d.pods.runtimePod(p.metadata?.uid ?? '')?.containers ?? []) if (c.startedAt) started.set(c.id, c.startedAt);
    }
    let stats: Awaited<ReturnType<ServerRuntime['listContainerStats']>> = [];
    let failed = false;
    try {
      stats = await this.d.runtime.listContainerStats();
    } catch (err) {
      failed = true;
      this.d.log.debug('container stats failed', { err: describeError(err) });
    }
    const node = (this.d.nodeUsage ?? readNodeUsage)(this.d.clock.now());
    return renderResourceMetrics(node, containerUsage(stats, (id) => started.get(id)), failed);
  }

  private async statsSummary(onlyCpuAndMemory: boolean): Promise<ReturnType<typeof buildSummary>> {
    const nowMs = this.d.clock.now();
    let stats: Awaited<ReturnType<ServerRuntime['listContainerStats']>> = [];
    try {
      stats = await this.d.runtime.listContainerStats();
    } catch (err) {
      this.d.log.debug('container stats failed', { err: describeError(err) });
    }
    const byId = new Map(stats.map((s) => [s.attributes.id, s]));
    const node: NodeInput = (this.d.summaryNode ?? ((now) => readNodeInput(this.d.rootDir ?? '/', now)))(nowMs);
    const apiPods = this.d.pods.pods();
    const runtimePods = apiPods.map((p) => this.d.pods.runtimePod(p.metadata?.uid ?? ''));
    const sandboxes = runtimePods.map((rt) => readySandbox(rt));
    const nets = onlyCpuAndMemory ? new Map<string, InterfaceStats[]>() : this.podNetwork(sandboxes.filter((s): s is string => s !== undefined));
    if (!onlyCpuAndMemory) {
      try {
        const fsInfo = await this.d.runtime.imageFsInfo();
        const images = fsInfo.imageFilesystems[0];
        const capacity = images ? statFs(images.fsId.mountpoint) : undefined;
        node.imageFs = { imagesBytes: images?.usedBytes ?? 0, containersBytes: fsInfo.containerFilesystems[0]?.usedBytes ?? 0, ...(capacity ? { capacity } : {}) };
      } catch (err) {
        this.d.log.debug('image filesystem info failed', { err: describeError(err) });
      }
    }
    const pods: PodInput[] = [];
    for (const [i, p] of apiPods.entries()) {
      const rt = runtimePods[i];
      // Running containers only, as upstream's summary: one entry per container name.
      const running = (rt?.containers ?? []).filter((c) => c.state === CONTAINER_RUNNING);
      const containers = await Promise.all(
        running.map(async (c) => {
          const logPath = onlyCpuAndMemory ? undefined : (await this.d.runtime.containerStatus(c.id).catch(() => undefined))?.status.logPath;
          const logsBytes = logPath ? await stat(logPath).then((s) => s.size, () => undefined) : undefined;
          const stats = byId.get(c.id);
          return { name: c.name, ...(c.startedAt ? { startedAtMs: Math.floor(c.startedAt / 1e6) } : {}), ...(stats ? { stats } : {}), ...(logsBytes !== undefined ? { logsBytes } : {}) };
        }),
      );
      const started = p.status?.startTime ? new Date(p.status.startTime as unknown as string).getTime() : undefined;
      const sandbox = sandboxes[i];
      const net = sandbox ? nets.get(sandbox) : undefined;
      pods.push({
        name: p.metadata?.name ?? '',
        namespace: p.metadata?.namespace ?? '',
        uid: p.metadata?.uid ?? '',
        ...(started !== undefined && !Number.isNaN(started) ? { startTimeMs: started } : {}),
        containers,
        ...(net ? { interfaces: net } : {}),
      });
    }
    return buildSummary({ nodeName: this.d.nodeName, nowMs, node, pods, onlyCpuAndMemory }, this.cpuRates);
  }

  private async run(route: ContainerRoute, q: URLSearchParams, reply: Reply): Promise<void> {
    const pod = findPod(this.d.pods.pods(), route.namespace, route.pod, route.uid);
    if (!pod) return reply.send(404, 'pod does not exist');
    const c = runningContainer(this.d.pods.runtimePod(pod.metadata?.uid ?? ''), route.container);
    if (!c) return reply.send(500, `container not found ("${route.container}")`);
    // For legacy reasons /run takes one space-separated "cmd" parameter (upstream).
    const cmd = (q.get('cmd') ?? '').split(' ');
    const r = await this.d.runtime.execSync(c.id, cmd, 0);
    reply.send(200, Buffer.concat([r.stdout, r.stderr]).toString('utf8'), { 'content-type': 'application/json' });
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const route = parseRoute(url.pathname);
    const reply = socketReply(socket);
    this.requests.inc({ method: req.method ?? 'GET', path: pathLabel(url.pathname), server_type: 'readwrite', long_running: 'true' });
    if (!(await this.admit(req, url.pathname, reply))) return;
    if (route.kind !== 'exec' && route.kind !== 'attach' && route.kind !== 'portForward') return reply.send(404, '404 page not found');
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    const connection = String(req.headers.connection ?? '').toLowerCase();
    if (!connection.includes('upgrade') || !upgrade.includes('spdy/3.1')) {
      // WebSocket streams go to kubelets that declare ExtendWebSocketsToKubelet; we do not.
      return reply.send(400, `unable to upgrade: missing upgrade headers in request: ${JSON.stringify(req.headers.upgrade ?? '')}`);
    }
    const pod = findPod(this.d.pods.pods(), route.namespace, route.pod, route.uid);
    if (!pod) return reply.send(404, 'pod does not exist');
    const rt = this.d.pods.runtimePod(pod.metadata?.uid ?? '');
    const podLabel = `${route.namespace}/${route.pod}`;

    if (route.kind === 'portForward') {
      const sandbox = readySandbox(rt);
      if (!sandbox) return reply.send(404, `pod "${route.pod}" has no ready sandbox`);
      const protocol = this.handshake(req, PORTFORWARD_PROTOCOLS, reply);
      if (!protocol) return;
      const handler = new PortForwardHandler({ dial: (port) => this.d.runtime.portForward(sandbox, port), log: this.d.log.child({ pod: podLabel }) });
      const conn = this.upgradeTo(socket, protocol, handler.accept);
      conn.onClose(() => handler.close());
      conn.feed(head);
      return;
    }

    const opts = parseStreamOptions(url.searchParams);
    if ('error' in opts) return reply.send(400, opts.error);
    const container = runningContainer(rt, route.container);
    if (!container) return reply.send(404, `container not found ("${route.container}")`);
    const cmd = url.searchParams.getAll('command');
    if (route.kind === 'exec' && cmd.length === 0) return reply.send(400, 'you must specify a command');
    const protocol = this.handshake(req, REMOTECOMMAND_PROTOCOLS, reply);
    if (!protocol) return;
    const collector = new StreamCollector();
    const conn = this.upgradeTo(socket, protocol, collector.accept);
    collector.start(expectedStreams(opts, protocol), conn);
    conn.feed(head);
    let streams;
    try {
      streams = await collector.ready;
    } catch (err) {
      this.d.log.debug('stream setup failed', { pod: podLabel, err: describeError(err) });
      conn.close();
      return;
    }
    const writeStatus = (st: Parameters<typeof encodeStatus>[1]) =>
      new Promise<void>((resolve) => {
        const bytes = encodeStatus(protocol, st);
        if (!bytes || !streams.error) return resolve();
        streams.error.write(bytes, () => resolve());
      });
    let session;
    try {
      session =
        route.kind === 'exec'
          ? await this.d.runtime.exec(container.id, cmd, { tty: opts.tty, stdin: opts.stdin })
          : await this.d.runtime.attach(container.id, { tty: opts.tty, stdin: opts.stdin });
    } catch (err) {
      const what = route.kind === 'exec' ? 'error executing command in container' : 'error attaching to container';
      await writeStatus(internalErrorStatus(`${what}: ${describeError(err)}`));
      conn.close();
      return;
    }
    conn.onClose(() => session.close());
    const status = await pumpSession(session, streams, route.kind === 'exec' ? { kind: 'exec', cmd } : { kind: 'attach' }, conn);
    if (status) await writeStatus(status);
    session.close();
    conn.close();
  }

  /** X-Stream-Protocol-Version negotiation (upstream httpstream.Handshake); answers on failure. */
  private handshake(req: IncomingMessage, server: readonly string[], reply: Reply): string | undefined {
    const client = splitProtocols(req.headers['x-stream-protocol-version']);
    if (client.length === 0) {
      reply.send(400, 'unable to upgrade: header X-Stream-Protocol-Version does not exist in request');
      return undefined;
    }
    const p = negotiateProtocol(client, server);
    if (!p) {
      reply.send(403, `unable to upgrade: unable to negotiate protocol: client supports [${client.join(' ')}], server accepts [${server.join(' ')}]`, {
        'X-Accepted-Stream-Protocol-Versions': [...server],
      });
    }
    return p;
  }

  private upgradeTo(socket: Duplex, protocol: string, onStream: (s: SpdyStream) => boolean): SpdyConnection {
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' + `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
    );
    const s = socket as Duplex & { setNoDelay?: (v: boolean) => void; setTimeout?: (ms: number) => void };
    s.setNoDelay?.(true);
    s.setTimeout?.(0);
    const conn = new SpdyConnection(socket as unknown as Transport, {
      onStream,
      onError: (err) => this.d.log.debug('SPDY connection error', { err: describeError(err) }),
    });
    this.conns.add(conn);
    conn.onClose(() => this.conns.delete(conn));
    return conn;
  }
}
