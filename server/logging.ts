// Structured JSON logs (pino). One child logger per request carries reqId, method and path;
// messages are static lower-case strings with the facts in fields. Credentials never reach a log:
// the Authorization header is not logged and URLs are logged without their query string's secrets.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'signet' },
      redact: { paths: ['req.headers.authorization', 'headers.authorization', 'password'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
