// The grpc probe, as upstream's pkg/probe/grpc: one grpc.health.v1.Health/Check
// call over plain-text HTTP/2 (h2c, no TLS), with the optional service name.
// The two protobuf messages are tiny and encoded by hand:
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  SERVING = 1
// Only SERVING is success; outputs are worded as upstream's.
import http2 from 'node:http2';
import { PROBE_USER_AGENT } from './http.ts';
import { joinHostPort } from '../../lib/ip.ts';
import { dialError, goSeconds, type ProbeOutcome } from './outcome.ts';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
export const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;
const CODES = ['OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated'];
const UNIMPLEMENTED = 12;
const DEADLINE_EXCEEDED = 4;

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

function readVarint(buf: Buffer, at: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  throw new Error('truncated varint');
}

/** HealthCheckRequest bytes (empty for the whole server). */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (!service) return Buffer.alloc(0);
  const s = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), varint(s.length), s]);
}

/** HealthCheckRequest from bytes (what a health server reads); unknown fields skipped. */
export function decodeHealthCheckRequest(buf: Buffer): string {
  let service = '';
  forEachField(buf, (field, wire, value) => {
    if (field === 1 && wire === 2 && Buffer.isBuffer(value)) service = value.toString('utf8');
  });
  return service;
}

/** HealthCheckResponse bytes. */
export function encodeHealthCheckResponse(status: number): Buffer {
  return status === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x08]), varint(status)]);
}

/** The status of a HealthCheckResponse (0, UNKNOWN, when absent); throws on malformed bytes. */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  forEachField(buf, (field, wire, value) => {
    if (field === 1 && wire === 0 && typeof value === 'number') status = value;
  });
  return status;
}

function forEachField(buf: Buffer, fn: (field: number, wire: number, value: number | Buffer) => void): void {
  let at = 0;
  while (at < buf.length) {
    const tag = readVarint(buf, at);
    at = tag.next;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value & 7;
    if (wire === 0) {
      const v = readVarint(buf, at);
      at = v.next;
      fn(field, wire, v.value);
    } else if (wire === 2) {
      const len = readVarint(buf, at);
      const end = len.next + len.value;
      if (end > buf.length) throw new Error('truncated field');
      fn(field, wire, buf.subarray(len.next, end));
      at = end;
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
      if (at > buf.length) throw new Error('truncated field');
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
}

/** A gRPC length-prefixed message (uncompressed). */
export function grpcFrame(msg: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

/** The first message of a gRPC body; undefined when none is complete. */
export function firstGrpcMessage(body: Buffer): Buffer | undefined {
  if (body.length < 5) return undefined;
  if (body.readUInt8(0) !== 0) throw new Error('compressed messages are not supported');
  const len = body.readUInt32BE(1);
  return body.length < 5 + len ? undefined : body.subarray(5, 5 + len);
}

/** gRPC's status code for an HTTP status that is not 200 (grpc-go's HTTPStatusConvTab). */
function codeForHttp(status: number): number {
  if (status === 400) return 13;
  if (status === 401) return 16;
  if (status === 403) return 7;
  if (status === 404) return UNIMPLEMENTED;
  if (status === 429 || status === 502 || status === 503 || status === 504) return 14;
  return 2;
}

function decodeMessage(m: string | string[] | undefined): string {
  const s = Array.isArray(m) ? (m[0] ?? '') : (m ?? '');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** One grpc probe of host:port within timeoutSeconds. Never throws. */
export function grpcProbe(host: string, port: number, service: string, timeoutSeconds: number): Promise<ProbeOutcome> {
  const addr = joinHostPort(host, port);
  const timeout = goSeconds(timeoutSeconds);
  return new Promise<ProbeOutcome>((resolve) => {
    let connected = false;
    let settled = false;
    const session = http2.connect(`http://${addr}`);
    const finish = (o: ProbeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish(connected
      ? { result: 'failure', output: `timeout: health rpc did not complete within ${timeout}` }
      : { result: 'failure', output: `timeout: failed to connect service "${addr}" within ${timeout}: context deadline exceeded` }), timeoutSeconds * 1000);
    const rpcError = (code: number, desc: string): ProbeOutcome => {
      if (code === UNIMPLEMENTED) return { result: 'failure', output: `this server does not implement the grpc health protocol (grpc.health.v1.Health): ${desc}` };
      if (code === DEADLINE_EXCEEDED) return { result: 'failure', output: `timeout: health rpc did not complete within ${timeout}` };
      return { result: 'failure', output: `error: health rpc probe failed: rpc error: code = ${CODES[code] ?? `Code(${code})`} desc = ${desc}` };
    };
    session.on('error', (err) => finish(connected
      ? rpcError(14, describe(err))
      : { result: 'failure', output: `error: failed to connect service at "${addr}": ${dialError(addr, err)}` }));
    session.on('connect', () => {
      connected = true;
    });
    const req = session.request({
      ':method': 'POST',
      ':path': HEALTH_CHECK_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': PROBE_USER_AGENT,
    });
    const chunks: Buffer[] = [];
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | string[] | undefined;
    req.on('response', (h) => {
      connected = true;
      httpStatus = Number(h[':status'] ?? 0);
      // A trailers-only answer carries the status in the headers.
      if (h['grpc-status'] !== undefined) {
        grpcStatus = String(h['grpc-status']);
        grpcMessage = h['grpc-message'];
      }
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) {
        grpcStatus = String(t['grpc-status']);
        grpcMessage = t['grpc-message'];
      }
    });
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('error', (err) => finish(connected ? rpcError(14, describe(err)) : { result: 'failure', output: `error: failed to connect service at "${addr}": ${dialError(addr, err)}` }));
    req.on('close', () => {
      if (settled) return;
      if (httpStatus !== 200) return finish(rpcError(codeForHttp(httpStatus), `unexpected HTTP status code received from server: ${httpStatus}`));
      if (grpcStatus === undefined) return finish(rpcError(13, 'server closed the stream without sending trailers'));
      const code = Number(grpcStatus);
      if (code !== 0) return finish(rpcError(code, decodeMessage(grpcMessage)));
      let status: number;
      try {
        const msg = firstGrpcMessage(Buffer.concat(chunks));
        if (!msg) return finish(rpcError(13, 'server sent no response message'));
        status = decodeHealthCheckResponse(msg);
      } catch (err) {
        return finish(rpcError(13, `grpc: failed to unmarshal the received message: ${describe(err)}`));
      }
      if (status !== 1) return finish({ result: 'failure', output: `service unhealthy (responded with "${SERVING_STATUS[status] ?? String(status)}")` });
      finish({ result: 'success', output: 'service healthy' });
    });
    req.end(grpcFrame(encodeHealthCheckRequest(service)));
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
