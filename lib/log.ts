// One root logger (JSON to stdout; journald takes it from there). Components
// take `log.child({ component })`; never import a global logger elsewhere.
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level: string = 'info', silent = false): Logger {
  return winston.createLogger({
    level,
    silent,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}

/** A logger that drops everything, for tests. */
export function nullLogger(): Logger {
  return createLogger('error', true);
}
