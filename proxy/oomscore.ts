// kube-proxy's --oom-score-adj (default -999): at start the proxy lowers its
// own OOM score so that the kernel's OOM killer takes it last, since a node
// whose proxy died stops serving its Services. As upstream, a kernel that
// refuses (no CAP_SYS_RESOURCE, as in many containers) is logged, not fatal.
import { writeFile } from 'node:fs/promises';
import { describeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';

export const OOM_SCORE_ADJ_DEFAULT = -999;
export const OOM_SCORE_ADJ_FILE = '/proc/self/oom_score_adj';

export type WriteFile = (file: string, text: string) => Promise<void>;

/** Writes `value` to this process's oom_score_adj; whether the kernel took it. */
export async function applyOomScoreAdj(value: number, log: Logger, write: WriteFile = (f, t) => writeFile(f, t)): Promise<boolean> {
  try {
    await write(OOM_SCORE_ADJ_FILE, `${value}\n`);
    log.debug('oom_score_adj set', { value });
    return true;
  } catch (err) {
    log.info('oom_score_adj not set (the kernel refused it); the proxy runs on', { value, error: describeError(err) });
    return false;
  }
}
