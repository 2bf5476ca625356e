// A logger that keeps what the registry logs, for tests that check what an operator would read.
import { Writable } from 'node:stream';
import pino from 'pino';

export interface CapturedLog {
  log: pino.Logger;
  /** Every line logged so far, parsed. */
  lines: Record<string, unknown>[];
  /** Lines with this message. */
  withMessage(msg: string): Record<string, unknown>[];
}

export function captureLog(level = 'info'): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return {
    log: pino({ level }, sink),
    lines,
    withMessage: (msg) => lines.filter((line) => line.msg === msg),
  };
}
