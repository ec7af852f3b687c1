// V8 flags for nodelet's long-running processes (agent, join, proxy). Also
// written out in bin/nodelet and systemd/*.service, which cannot import this.
// A 1 MB semi-space: on a machine with much memory V8 grows the young
// generation to 2 x 64 MB, which is most of a node agent's RSS (measured with
// 110 pods: 226 MB without, 164 MB with).
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
