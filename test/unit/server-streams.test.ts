// Pure parts of exec/attach/port-forward and routing: query options, protocol
// negotiation, the status on the error stream, resize decoding, stream
// checks, paths, and which container a request means.
import { expect } from 'chai';
import { checkPortForwardStream, pairKey } from '../../agent/server/portforward.ts';
import {
  encodeStatus,
  expectedStreams,
  exitStatus,
  internalErrorStatus,
  negotiateProtocol,
  parseStreamOptions,
  PROTOCOL_V2,
  PROTOCOL_V3,
  PROTOCOL_V4,
  REMOTECOMMAND_PROTOCOLS,
  ResizeDecoder,
  splitProtocols,
  SUCCESS,
} from '../../agent/server/remotecommand.ts';
import { findPod, hasContainer, logContainer, parseRoute, readySandbox, runningContainer } from '../../agent/server/routes.ts';
import type { RuntimeContainer, RuntimePodStatus } from '../../agent/pod/types.ts';

function ctr(id: string, name: string, createdAt: number, state: RuntimeContainer['state']): RuntimeContainer {
  return { id, sandboxId: 's', name, hash: '', restartCount: 0, state, createdAt, startedAt: 0, finishedAt: 0, exitCode: 0, reason: '', message: '', image: '', imageRef: '' };
}

describe('server/streams', () => {
  describe('parseStreamOptions (upstream NewOptions)', () => {
    it('reads input/output/error/tty = "1"', () => {
      expect(parseStreamOptions(new URLSearchParams('input=1&output=1&error=1'))).to.deep.equal({ stdin: true, stdout: true, stderr: true, tty: false });
      expect(parseStreamOptions(new URLSearchParams('output=true'))).to.deep.equal({ error: 'you must specify at least 1 of stdin, stdout, stderr' });
    });

    it('drops stderr with a tty', () => {
      expect(parseStreamOptions(new URLSearchParams('output=1&error=1&tty=1'))).to.deep.equal({ stdin: false, stdout: true, stderr: false, tty: true });
    });
  });

  describe('protocol negotiation', () => {
    it('splits repeated and comma-separated headers', () => {
      expect(splitProtocols(['v4.channel.k8s.io, v3.channel.k8s.io', 'channel.k8s.io'])).to.deep.equal(['v4.channel.k8s.io', 'v3.channel.k8s.io', 'channel.k8s.io']);
      expect(splitProtocols(undefined)).to.deep.equal([]);
    });

    it("takes the client's first protocol that the server has", () => {
      expect(negotiateProtocol(['v5.channel.k8s.io', PROTOCOL_V3, PROTOCOL_V4], REMOTECOMMAND_PROTOCOLS)).to.equal(PROTOCOL_V3);
      expect(negotiateProtocol(['v9'], REMOTECOMMAND_PROTOCOLS)).to.equal(undefined);
    });

    it('expects one stream per role, resize only with a tty on v3+', () => {
      const all = { stdin: true, stdout: true, stderr: true, tty: false };
      expect(expectedStreams(all, PROTOCOL_V4)).to.equal(4);
      expect(expectedStreams({ stdin: true, stdout: true, stderr: false, tty: true }, PROTOCOL_V4)).to.equal(4);
      expect(expectedStreams({ stdin: true, stdout: true, stderr: false, tty: true }, PROTOCOL_V2)).to.equal(3);
    });
  });

  describe('status on the error stream', () => {
    it('sends the v1 Status as JSON on v4, with NonZeroExitCode and the ExitCode cause', () => {
      expect(JSON.parse(encodeStatus(PROTOCOL_V4, exitStatus(['sh', '-c', 'exit 3'], 3))!.toString())).to.deep.equal({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
        message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
      });
      expect(encodeStatus(PROTOCOL_V4, SUCCESS)!.toString()).to.equal('{"status":"Success"}');
    });

    it('sends only a failure message before v4', () => {
      expect(encodeStatus(PROTOCOL_V3, SUCCESS)).to.equal(undefined);
      expect(encodeStatus(PROTOCOL_V2, internalErrorStatus('boom'))!.toString()).to.equal('Internal error occurred: boom');
    });
  });

  describe('ResizeDecoder', () => {
    it('decodes concatenated JSON objects split anywhere', () => {
      const d = new ResizeDecoder();
      const text = '{"Width":80,"Height":24}\n{"Width":1';
      expect(d.push(text)).to.deep.equal([{ width: 80, height: 24 }]);
      expect(d.push('00,"Height":30}{"Width":5,"Height":6}')).to.deep.equal([
        { width: 100, height: 30 },
        { width: 5, height: 6 },
      ]);
      expect(d.push('{"Width":"x"}')).to.deep.equal([]);
    });
  });

  describe('port-forward streams', () => {
    it('checks the port and stream type headers as upstream', () => {
      expect(checkPortForwardStream({ port: '8080', streamType: 'data' })).to.equal(undefined);
      expect(checkPortForwardStream({ port: '', streamType: 'data' })).to.equal('"port" header is required');
      expect(checkPortForwardStream({ port: 'http', streamType: 'data' })).to.equal('unable to parse "http" as a port');
      expect(checkPortForwardStream({ port: '70000', streamType: 'data' })).to.equal('unable to parse "70000" as a port');
      expect(checkPortForwardStream({ port: '0', streamType: 'error' })).to.equal('port "0" must be > 0');
      expect(checkPortForwardStream({ port: '1', streamType: '' })).to.equal('"streamType" header is required');
      expect(checkPortForwardStream({ port: '1', streamType: 'stdin' })).to.equal('invalid stream type "stdin"');
    });

    it('pairs by requestID, else by stream id (data = error + 2)', () => {
      expect(pairKey('7', 'data', 5)).to.equal('7');
      expect(pairKey('', 'error', 1)).to.equal('1');
      expect(pairKey('', 'data', 3)).to.equal('1');
    });
  });

  describe('routes', () => {
    it('parses the kubelet paths', () => {
      expect(parseRoute('/healthz')).to.deep.equal({ kind: 'healthz' });
      expect(parseRoute('/pods')).to.deep.equal({ kind: 'pods' });
      expect(parseRoute('/metrics')).to.deep.equal({ kind: 'metrics' });
      expect(parseRoute('/containerLogs/ns/p/c')).to.deep.equal({ kind: 'containerLogs', namespace: 'ns', pod: 'p', container: 'c' });
      expect(parseRoute('/exec/ns/p/c')).to.deep.equal({ kind: 'exec', namespace: 'ns', pod: 'p', container: 'c' });
      expect(parseRoute('/attach/ns/p/u1/c')).to.deep.equal({ kind: 'attach', namespace: 'ns', pod: 'p', uid: 'u1', container: 'c' });
      expect(parseRoute('/run/ns/p/c')).to.deep.equal({ kind: 'run', namespace: 'ns', pod: 'p', container: 'c' });
      expect(parseRoute('/portForward/ns/p')).to.deep.equal({ kind: 'portForward', namespace: 'ns', pod: 'p' });
      expect(parseRoute('/portForward/ns/p/u1')).to.deep.equal({ kind: 'portForward', namespace: 'ns', pod: 'p', uid: 'u1' });
      expect(parseRoute('/exec/ns/p')).to.deep.equal({ kind: 'notFound' });
      expect(parseRoute('/containerLogs/ns//c')).to.deep.equal({ kind: 'notFound' });
      expect(parseRoute('/exec/ns/p/%E0%A4%A')).to.deep.equal({ kind: 'notFound' });
    });

    const pods = [
      { metadata: { namespace: 'a', name: 'web', uid: 'u1' }, spec: { containers: [{ name: 'app' }], initContainers: [{ name: 'init' }] } },
      { metadata: { namespace: 'b', name: 'web', uid: 'u2' }, spec: { containers: [{ name: 'app' }] } },
    ];

    it('finds the pod by namespace and name (and UID when given) and its containers', () => {
      expect(findPod(pods, 'b', 'web')?.metadata?.uid).to.equal('u2');
      expect(findPod(pods, 'a', 'web', 'u2')).to.equal(undefined);
      expect(hasContainer(pods[0]!, 'init')).to.equal(true);
      expect(hasContainer(pods[0]!, 'nope')).to.equal(false);
    });

    it('picks the newest running container, and the current or previous one for logs', () => {
      const rt: RuntimePodStatus = {
        uid: 'u1',
        name: 'web',
        namespace: 'a',
        sandboxes: [
          { id: 'old', state: 'SANDBOX_NOTREADY', attempt: 0, createdAt: 1, ip: '' },
          { id: 'sb', state: 'SANDBOX_READY', attempt: 1, createdAt: 2, ip: '10.0.0.2' },
        ],
        containers: [ctr('c1', 'app', 1, 'CONTAINER_EXITED'), ctr('c3', 'app', 3, 'CONTAINER_RUNNING'), ctr('c2', 'app', 2, 'CONTAINER_EXITED'), ctr('x', 'side', 9, 'CONTAINER_RUNNING')],
      };
      expect(runningContainer(rt, 'app')?.id).to.equal('c3');
      expect(runningContainer(rt, 'none')).to.equal(undefined);
      expect(logContainer(rt, 'web', 'app', false)).to.deep.equal({ container: rt.containers[1] });
      expect(logContainer(rt, 'web', 'app', true)).to.deep.equal({ container: rt.containers[2] });
      expect(logContainer(rt, 'web', 'side', true)).to.deep.equal({ error: 'previous terminated container "side" in pod "web" not found' });
      expect(logContainer(undefined, 'web', 'app', false)).to.deep.equal({ error: 'container "app" in pod "web" is waiting to start: ContainerCreating' });
      expect(readySandbox(rt)).to.equal('sb');
    });
  });
});
