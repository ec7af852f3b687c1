// A logger that keeps what is logged (parsed JSON entries), for tests that check a message was written.
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Logger } from '../../lib/log.ts';

export type LogEntry = { level: string; message: string; [k: string]: unknown };

export function captureLogger(): { log: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) entries.push(JSON.parse(line) as LogEntry);
      cb();
    },
  });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { log, entries };
}
