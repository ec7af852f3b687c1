// agent/runtimemetrics: every CRI call counted and timed under upstream's
// operation_type, errors counted apart (not-found is an answer, not an error),
// and the wrapped object still behaves as itself.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { instrumentRuntime, RuntimeMetrics } from '../../agent/runtimemetrics.ts';
import { NodeletError } from '../../lib/errors.ts';

class Rt {
  calls = 0;
  async runPodSandbox(name: string): Promise<string> {
    this.calls++;
    return `sb-${name}`;
  }
  async containerStatus(id: string): Promise<string> {
    throw new NodeletError(id === 'gone' ? 'CRI_NOT_FOUND' : 'CRI_RUNTIME_FAILED', id);
  }
  helper(): number {
    return this.calls;
  }
}

/** The value of `name` (a series of a histogram: `<name>_sum`) with `labels`; undefined when absent. */
async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  for (const m of await registry.getMetricsAsJSON()) {
    for (const v of m.values as Array<{ value: number; labels: Record<string, unknown>; metricName?: string }>) {
      if ((v.metricName ?? m.name) !== name) continue;
      if (Object.entries(labels).every(([k, x]) => v.labels[k] === x)) return v.value;
    }
  }
  return undefined;
}

describe('agent/runtimemetrics', () => {
  it('times calls by operation_type and counts errors, keeping results, errors and `this`', async () => {
    const registry = new Registry();
    let t = 0;
    const rt = instrumentRuntime(new Rt(), new RuntimeMetrics(registry), () => (t += 250));
    expect(await rt.runPodSandbox('a')).to.equal('sb-a');
    expect(await rt.runPodSandbox('b')).to.equal('sb-b');
    expect(rt.helper(), 'an unlisted method passes through, bound to the object').to.equal(2);
    const codes: Array<string | undefined> = [];
    for (const id of ['gone', 'broken']) await rt.containerStatus(id).catch((e: NodeletError) => codes.push(e.code));
    expect(codes).to.deep.equal(['CRI_NOT_FOUND', 'CRI_RUNTIME_FAILED']);

    expect(await metricValue(registry, 'kubelet_runtime_operations_total', { operation_type: 'run_podsandbox' })).to.equal(2);
    expect(await metricValue(registry, 'kubelet_runtime_operations_total', { operation_type: 'container_status' })).to.equal(2);
    expect(await metricValue(registry, 'kubelet_runtime_operations_errors_total', { operation_type: 'container_status' })).to.equal(1);
    expect(await metricValue(registry, 'kubelet_runtime_operations_errors_total', { operation_type: 'run_podsandbox' })).to.equal(undefined);
    // Each call's clock moved 250 ms between start and end.
    expect(await metricValue(registry, 'kubelet_runtime_operations_duration_seconds_sum', { operation_type: 'run_podsandbox' })).to.equal(0.5);
  });
});
