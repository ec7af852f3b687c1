// CRI configs -> Docker create options. Addresses are from documentation ranges.
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { containerCreateOptions, mountToBind, resourcesToHostConfig, sandboxCreateOptions } from '../../cri/docker/config.ts';
import { followProgress } from '../../cri/docker/progress.ts';
import type { ContainerConfig, PodSandboxConfig } from '../../cri/api.ts';
import { decodeLabels, LABEL_SANDBOX_ID, LABEL_TYPE } from '../../cri/labels.ts';
import { errorCode } from '../../lib/errors.ts';

const sb = (over: Partial<PodSandboxConfig> = {}): PodSandboxConfig => ({
  metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 1 },
  hostname: 'web',
  dnsConfig: { servers: ['192.0.2.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
  portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 8080, hostIp: '192.0.2.1' }, { protocol: 'UDP', containerPort: 53, hostPort: 0 }],
  labels: { app: 'web' },
  annotations: { note: 'x' },
  ...over,
});
const hostNet = { linux: { securityContext: { namespaceOptions: { network: 'NODE' as const, pid: 'NODE' as const, ipc: 'NODE' as const } } } };

describe('cri/docker/config: sandbox', () => {
  it('runs the pause image on the bridge, shareable IPC, with DNS, hostname and ports', () => {
    const o = sandboxCreateOptions(sb(), { pauseImage: 'nodelet.local/pause:3.10', oomScoreAdj: -998 });
    expect(o.name).to.equal('k8s_POD_web_default_u1_1');
    expect(o.Image).to.equal('nodelet.local/pause:3.10');
    expect(o.Hostname).to.equal('web');
    expect(o.HostConfig).to.include({ NetworkMode: 'bridge', IpcMode: 'shareable', OomScoreAdj: -998 });
    expect(o.HostConfig?.PidMode).to.equal(undefined);
    expect(o.HostConfig?.Dns).to.deep.equal(['192.0.2.10']);
    expect(o.HostConfig?.DnsSearch).to.deep.equal(['default.svc.cluster.local']);
    expect(o.HostConfig?.DnsOptions).to.deep.equal(['ndots:5']);
    expect(o.ExposedPorts).to.deep.equal({ '80/tcp': {}, '53/udp': {} });
    expect(o.HostConfig?.PortBindings).to.deep.equal({ '80/tcp': [{ HostIp: '192.0.2.1', HostPort: '8080' }] });
    expect(o.Labels?.[LABEL_TYPE]).to.equal('podsandbox');
    expect(decodeLabels(o.Labels)).to.deep.equal({ labels: { app: 'web' }, annotations: { note: 'x' } });
  });

  it('uses the host namespaces for hostNetwork/hostPID/hostIPC, without hostname or port bindings', () => {
    const o = sandboxCreateOptions(sb({ ...hostNet, linux: { ...hostNet.linux, sysctls: { 'net.ipv4.ip_forward': '1', 'kernel.shm_rmid_forced': '1' } } }), { pauseImage: 'p' });
    expect(o.HostConfig).to.include({ NetworkMode: 'host', IpcMode: 'host', PidMode: 'host' });
    expect(o.Hostname).to.equal(undefined);
    expect(o.HostConfig?.PortBindings).to.equal(undefined);
    expect(o.HostConfig?.Sysctls).to.deep.equal({ 'kernel.shm_rmid_forced': '1' });
    expect(o.HostConfig?.OomScoreAdj).to.equal(undefined);
  });
});

describe('cri/docker/config: container', () => {
  const base: ContainerConfig = {
    metadata: { name: 'app', attempt: 3 },
    image: { image: 'nodelet.local/busybox:1.35' },
    command: ['sh', '-c'],
    args: ['echo hi'],
    workingDir: '/work',
    envs: [{ key: 'A', value: '1' }, { key: 'B', value: 'x=y' }],
    mounts: [
      { containerPath: '/data', hostPath: '/srv/data', readonly: true },
      { containerPath: '/shared', hostPath: '/srv/shared', propagation: 'PROPAGATION_BIDIRECTIONAL' },
    ],
    devices: [{ containerPath: '/dev/fuse', hostPath: '/dev/fuse', permissions: 'rw' }],
    labels: { 'io.kubernetes.container.name': 'app' },
    linux: {
      resources: { cpuShares: 512, cpuQuota: 50000, cpuPeriod: 100000, memoryLimitInBytes: 67108864, oomScoreAdj: 900 },
      securityContext: {
        runAsUser: 1000, runAsGroup: 2000, supplementalGroups: [3000], capabilities: { addCapabilities: ['NET_ADMIN'], dropCapabilities: ['ALL'] },
        readonlyRootfs: true, noNewPrivs: true, seccomp: { profileType: 'Unconfined' }, maskedPaths: ['/proc/kcore'], readonlyPaths: ['/proc/sys'],
      },
    },
  };
  const ctx = { sandboxId: 'sb123', sandboxConfig: sb(), image: 'nodelet.local/busybox:1.35', logPath: '/var/log/pods/default_web_u1/app/0.log' };

  it('joins the sandbox and maps command, args, env, mounts, devices, resources and security', () => {
    const o = containerCreateOptions(base, ctx);
    expect(o.name).to.equal('k8s_app_web_default_u1_3');
    expect(o.Entrypoint).to.deep.equal(['sh', '-c']);
    expect(o.Cmd).to.deep.equal(['echo hi']);
    expect(o.WorkingDir).to.equal('/work');
    expect(o.Env).to.deep.equal(['A=1', 'B=x=y']);
    expect(o.User).to.equal('1000:2000');
    expect(o.Hostname).to.equal(undefined);
    const hc = o.HostConfig!;
    expect(hc).to.include({ NetworkMode: 'container:sb123', IpcMode: 'container:sb123', CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, Memory: 67108864, MemorySwap: 67108864, OomScoreAdj: 900, ReadonlyRootfs: true });
    expect(hc.PidMode).to.equal(undefined); // CRI default: a PID namespace per container
    expect(hc.Binds).to.deep.equal(['/srv/data:/data:ro', '/srv/shared:/shared:rshared']);
    expect(hc.Devices).to.deep.equal([{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rw' }]);
    expect(hc.GroupAdd).to.deep.equal(['3000']);
    expect(hc.CapAdd).to.deep.equal(['NET_ADMIN']);
    expect(hc.CapDrop).to.deep.equal(['ALL']);
    expect(hc.SecurityOpt).to.deep.equal(['no-new-privileges', 'seccomp=unconfined']);
    expect(hc.MaskedPaths).to.deep.equal(['/proc/kcore']);
    expect(o.Labels?.[LABEL_SANDBOX_ID]).to.equal('sb123');
    expect(o.Labels?.[LABEL_TYPE]).to.equal('container');
  });

  it('keeps the image ENTRYPOINT when only args are given, and clears CMD when only command is', () => {
    const argsOnly = containerCreateOptions({ ...base, command: [], args: ['-x'] }, ctx);
    expect(argsOnly.Entrypoint).to.equal(undefined);
    expect(argsOnly.Cmd).to.deep.equal(['-x']);
    const cmdOnly = containerCreateOptions({ ...base, command: ['/bin/app'], args: [] }, ctx);
    expect(cmdOnly.Entrypoint).to.deep.equal(['/bin/app']);
    expect(cmdOnly.Cmd).to.deep.equal([]);
  });

  it('shares the pod PID namespace or the host\'s as asked', () => {
    const podPid = containerCreateOptions({ ...base, linux: { securityContext: { namespaceOptions: { pid: 'POD' } } } }, ctx);
    expect(podPid.HostConfig?.PidMode).to.equal('container:sb123');
    const hostAll = containerCreateOptions({ ...base, linux: {} }, { ...ctx, sandboxConfig: sb(hostNet) });
    expect(hostAll.HostConfig).to.include({ NetworkMode: 'container:sb123', PidMode: 'host', IpcMode: 'host' });
  });

  it('privileged containers get no masked paths; Localhost seccomp is refused', () => {
    const priv = containerCreateOptions({ ...base, linux: { securityContext: { privileged: true, maskedPaths: ['/proc/kcore'] } } }, ctx);
    expect(priv.HostConfig?.Privileged).to.equal(true);
    expect(priv.HostConfig?.MaskedPaths).to.equal(undefined);
    let err: unknown;
    try {
      containerCreateOptions({ ...base, linux: { securityContext: { seccomp: { profileType: 'Localhost', localhostRef: '/x.json' } } } }, ctx);
    } catch (e) {
      err = e;
    }
    expect(errorCode(err)).to.equal('CRI_UNSUPPORTED');
  });

  it('maps resources and binds on their own', () => {
    expect(resourcesToHostConfig({ memoryLimitInBytes: 100, memorySwapLimitInBytes: 200 })).to.deep.equal({ Memory: 100, MemorySwap: 200 });
    expect(resourcesToHostConfig({})).to.deep.equal({});
    expect(mountToBind({ containerPath: '/a', hostPath: '/b', propagation: 'PROPAGATION_HOST_TO_CONTAINER' })).to.equal('/b:/a:rslave');
  });
});

describe('cri/docker/progress', () => {
  it('follows a JSON-lines stream split across chunks and reports progress', async () => {
    const s = new PassThrough();
    const seen: string[] = [];
    const done = followProgress(s, (p) => seen.push(`${p.status}${p.current !== undefined ? ` ${p.current}/${p.total}` : ''}`));
    s.write('{"status":"Pulling fs layer","id":"a"}\n{"status":"Downl');
    s.write('oading","id":"a","progressDetail":{"current":5,"total":10}}\n');
    s.end('{"status":"Pull complete","id":"a"}');
    expect(await done).to.equal(undefined);
    expect(seen).to.deep.equal(['Pulling fs layer', 'Downloading 5/10', 'Pull complete']);
  });

  it('treats an error line as the failure, even when the stream ends normally', async () => {
    const s = new PassThrough();
    const done = followProgress(s);
    s.end('{"status":"Pulling"}\n{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\n');
    expect(await done).to.equal('manifest unknown');
  });
});
