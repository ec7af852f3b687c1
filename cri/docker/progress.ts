// Docker's JSON-lines progress streams (pull, import, load): the HTTP call
// succeeds as soon as the stream starts, and failures arrive as a line with
// `error` / `errorDetail`. This follows a stream to its end, splitting on
// newlines (a JSON object may span chunks), and reports the first error.
import type { PullProgress } from '../api.ts';

interface ProgressLine {
  error?: string;
  errorDetail?: { message?: string };
  status?: string;
  stream?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
}

/** Resolves with the first error message ('' never), or undefined when the stream ended cleanly. */
export function followProgress(stream: NodeJS.ReadableStream, onProgress?: (p: PullProgress) => void): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    let error: string | undefined;
    const line = (l: string) => {
      if (!l.trim()) return;
      let j: ProgressLine;
      try {
        j = JSON.parse(l) as ProgressLine;
      } catch {
        return;
      }
      if (j.error || j.errorDetail) error ??= j.errorDetail?.message || j.error || 'unknown error';
      else if (j.status && onProgress) {
        const p: PullProgress = { status: j.status };
        if (j.id) p.id = j.id;
        if (j.progressDetail?.current !== undefined) p.current = j.progressDetail.current;
        if (j.progressDetail?.total !== undefined) p.total = j.progressDetail.total;
        onProgress(p);
      }
    };
    stream.on('data', (b: Buffer) => {
      buf += b.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        line(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    stream.on('error', (e: Error) => resolve(error ?? e.message));
    stream.on('end', () => {
      line(buf);
      resolve(error);
    });
  });
}
