// As kube-proxy: once running, a change to its --config file (written, or
// replaced by a rename, as editors and ConfigMap volumes do) ends the process
// with an error, so that its supervisor (systemd's Restart=always, a
// DaemonSet) starts it again with the new settings. Rules stay in the kernel
// meanwhile; the next start resyncs them.
import { watch, type FSWatcher } from 'node:fs';

/**
 * Calls `onChange` once, at the first change to `file`; the returned function
 * stops watching. A file that cannot be watched is reported through `onError`
 * (the proxy then runs on without the watch).
 */
export function watchConfigFile(file: string, onChange: (event: string) => void, onError: (err: unknown) => void): () => void {
  let watcher: FSWatcher | undefined;
  let fired = false;
  const stop = () => {
    watcher?.close();
    watcher = undefined;
  };
  try {
    watcher = watch(file, { persistent: false }, (event) => {
      if (fired) return;
      fired = true;
      stop();
      onChange(event);
    });
    watcher.on('error', (err) => {
      stop();
      onError(err);
    });
  } catch (err) {
    onError(err);
  }
  return stop;
}
