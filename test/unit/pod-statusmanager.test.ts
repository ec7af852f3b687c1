// StatusManager: patches only on change, nulls removed keys, compares times
// at whole seconds as the API stores them, ignores a UID conflict.
import type { V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { NodeletError } from '../../lib/errors.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakePodApi as Api } from '../fakes/podapi.ts';
import { StatusManager, statusPatch, toApiJson } from '../../agent/pod/statusmanager.ts';

const pod = (status: V1Pod['status']): V1Pod => ({ metadata: { name: 'p', namespace: 'default', uid: 'u1' }, status });

describe('StatusManager', () => {
  it('writes API times: whole seconds, no fraction', () => {
    expect(toApiJson({ t: new Date('2025-01-01T00:00:05.123Z'), s: '2025-01-01T00:00:06.000Z' })).to.deep.equal({ t: '2025-01-01T00:00:05Z', s: '2025-01-01T00:00:06Z' });
  });

  it('builds a merge patch with changed keys and nulls for removed ones', () => {
    expect(statusPatch({ phase: 'Pending', message: 'x', podIP: '10.0.0.1' }, { phase: 'Running', podIP: '10.0.0.1' })).to.deep.equal({ phase: 'Running', message: null });
  });

  it('patches with a UID precondition when the status changed, and not again for the same status', async () => {
    const api = new Api();
    const sm = new StatusManager({ api, log: nullLogger() });
    expect(await sm.setStatus(pod({ phase: 'Pending' }), { phase: 'Running' })).to.equal(true);
    expect(api.patches.map((p) => p.patch)).to.deep.equal([{ metadata: { uid: 'u1' }, status: { phase: 'Running' } }]);
    expect(await sm.setStatus(pod({ phase: 'Pending' }), { phase: 'Running' })).to.equal(false);
    expect(api.patches).to.have.length(1);
  });

  it('does not patch when the API already shows the status', async () => {
    const api = new Api();
    const sm = new StatusManager({ api, log: nullLogger() });
    expect(await sm.setStatus(pod({ phase: 'Running', startTime: new Date('2025-01-01T00:00:00Z') }), { phase: 'Running', startTime: new Date('2025-01-01T00:00:00.400Z') })).to.equal(false);
    expect(api.patches).to.have.length(0);
  });

  it('treats a UID conflict as not ours, and rethrows other errors', async () => {
    const api = new Api();
    const sm = new StatusManager({ api, log: nullLogger() });
    api.fail = new NodeletError('API_CONFLICT', 'uid mismatch');
    expect(await sm.setStatus(pod({}), { phase: 'Running' })).to.equal(false);
    api.fail = new NodeletError('API_ERROR', 'down');
    let caught: unknown;
    try {
      await sm.setStatus(pod({}), { phase: 'Running' });
    } catch (err) {
      caught = err;
    }
    expect((caught as NodeletError).code).to.equal('API_ERROR');
  });
});
