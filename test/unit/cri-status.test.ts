import { expect } from 'chai';
import { dockerTimeToNanos, listStateToCri, mapContainerState, REASON_CANNOT_RUN, sandboxNetwork, sandboxStateFromList } from '../../cri/status.ts';

const ZERO = '0001-01-01T00:00:00Z';
const START = '2024-05-01T10:00:00.123456789Z';
const END = '2024-05-01T10:00:05.5Z';
const startNs = Date.UTC(2024, 4, 1, 10, 0, 0) * 1e6 + 123456789;
const endNs = Date.UTC(2024, 4, 1, 10, 0, 5) * 1e6 + 500000000;

describe('cri/status: Docker inspect -> CRI container status', () => {
  it('converts Docker times to nanoseconds, Go\'s zero time to 0', () => {
    expect(dockerTimeToNanos(START)).to.be.closeTo(startNs, 512);
    expect(dockerTimeToNanos(ZERO)).to.equal(0);
    expect(dockerTimeToNanos('')).to.equal(0);
    expect(dockerTimeToNanos(undefined)).to.equal(0);
  });

  const cases: [string, object, object][] = [
    ['created, never started', { Status: 'created', ExitCode: 0, StartedAt: ZERO, FinishedAt: ZERO },
      { state: 'CONTAINER_CREATED', reason: '', exitCode: 0, startedAt: 0, finishedAt: 0 }],
    ['running', { Status: 'running', Running: true, StartedAt: START, FinishedAt: ZERO },
      { state: 'CONTAINER_RUNNING', reason: '', exitCode: 0, finishedAt: 0 }],
    ['running again after a restart keeps no finish time', { Status: 'running', Running: true, StartedAt: START, FinishedAt: END, ExitCode: 0 },
      { state: 'CONTAINER_RUNNING', finishedAt: 0 }],
    ['exited 0: Completed', { Status: 'exited', ExitCode: 0, StartedAt: START, FinishedAt: END },
      { state: 'CONTAINER_EXITED', reason: 'Completed', exitCode: 0 }],
    ['exited 1: Error', { Status: 'exited', ExitCode: 1, StartedAt: START, FinishedAt: END },
      { state: 'CONTAINER_EXITED', reason: 'Error', exitCode: 1 }],
    ['killed by the OOM killer', { Status: 'exited', ExitCode: 137, OOMKilled: true, StartedAt: START, FinishedAt: END },
      { state: 'CONTAINER_EXITED', reason: 'OOMKilled', exitCode: 137 }],
    ['start failed (executable not found)', { Status: 'created', ExitCode: 127, Error: 'exec: "nope": executable file not found', StartedAt: ZERO, FinishedAt: ZERO },
      { state: 'CONTAINER_EXITED', reason: REASON_CANNOT_RUN, exitCode: 127, message: 'exec: "nope": executable file not found' }],
    ['start failed, with a finish time', { Status: 'exited', ExitCode: 128, Error: 'oci error', StartedAt: ZERO, FinishedAt: END },
      { state: 'CONTAINER_EXITED', reason: REASON_CANNOT_RUN, message: 'oci error' }],
    ['dead', { Status: 'dead', ExitCode: 0, StartedAt: ZERO, FinishedAt: ZERO }, { state: 'CONTAINER_EXITED' }],
    ['removing', { Status: 'removing', ExitCode: 0, StartedAt: ZERO, FinishedAt: ZERO }, { state: 'CONTAINER_UNKNOWN' }],
  ];
  for (const [name, docker, want] of cases) {
    it(name, () => expect(mapContainerState(docker)).to.include(want));
  }

  it('keeps start and finish times of an exited container', () => {
    const s = mapContainerState({ Status: 'exited', ExitCode: 0, StartedAt: START, FinishedAt: END });
    expect(s.startedAt).to.be.closeTo(startNs, 512);
    expect(s.finishedAt).to.be.closeTo(endNs, 512);
  });

  it('maps docker ps states', () => {
    expect(['created', 'running', 'paused', 'restarting', 'exited', 'dead', 'removing'].map(listStateToCri)).to.deep.equal([
      'CONTAINER_CREATED', 'CONTAINER_RUNNING', 'CONTAINER_RUNNING', 'CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_EXITED', 'CONTAINER_UNKNOWN',
    ]);
    expect(sandboxStateFromList('running')).to.equal('SANDBOX_READY');
    expect(sandboxStateFromList('exited')).to.equal('SANDBOX_NOTREADY');
  });

  it('reads a sandbox\'s IPs from its Docker endpoint: IPv4 first, a global IPv6 address as the additional one', () => {
    expect(sandboxNetwork({ IPAddress: '10.244.0.5', GlobalIPv6Address: '' })).to.deep.equal({ ip: '10.244.0.5', additionalIps: [] });
    expect(sandboxNetwork({ IPAddress: '10.244.0.5', GlobalIPv6Address: 'fd00:1:244::5' })).to.deep.equal({ ip: '10.244.0.5', additionalIps: [{ ip: 'fd00:1:244::5' }] });
    // IPv6-only network: the IPv6 address is the ip.
    expect(sandboxNetwork({ IPAddress: '', GlobalIPv6Address: 'fd00:1:244::5' })).to.deep.equal({ ip: 'fd00:1:244::5', additionalIps: [] });
    expect(sandboxNetwork(undefined)).to.deep.equal({ ip: '', additionalIps: [] });
  });
});
