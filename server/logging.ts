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
      // The request logs carry no headers and no query strings (app.ts logs the path only); these
      // paths are a second line of defence should a header or credential object reach a log.
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["proxy-authorization"]',
          'headers.authorization',
          'headers.cookie',
          'headers["proxy-authorization"]',
          'authorization',
          'password',
          '*.password',
          'secretkey',
          '*.secretkey',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
