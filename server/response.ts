// The server's response class: headers handed over as one list with the status line instead of one
// setHeader call each, where a handler can.
import http from 'node:http';

const NONE: readonly string[] = [];

/**
 * Node keeps headers set one by one (setHeader, what Koa's ctx.set calls) in a dictionary keyed by
 * their lower-cased names and walks it when the head is written; a flat [name, value, ...] list
 * given to writeHead when nothing was set that way is written as it is (validated the same). On
 * blob HEAD under ab that was 0.3 µs a header in a bare server and 17 % more answers a second for
 * Signet with five headers fewer (bench row 21).
 *
 * The headers every answer carries (`setCommonHeaders`, by the app's first middleware) are kept
 * here and join whatever else is sent when the head is written, either way it is written: a
 * handler answering with `writeHead(status, list)` on a response nothing was set on takes the fast
 * path; anything else (Koa's own answers, errors, streams) gets them through setHeader as before.
 */
export class RegistryResponse<Request extends http.IncomingMessage = http.IncomingMessage> extends http.ServerResponse<Request> {
  /**
   * Answers ended with endSoon in this turn of the event loop, written together in its check
   * phase. Shared by every server on purpose: the queue is the thread's one event loop's.
   */
  private static turnQueue: RegistryResponse[] = [];

  private static endQueued(): void {
    const queued = RegistryResponse.turnQueue;
    RegistryResponse.turnQueue = [];
    for (const res of queued) {
      const body = res.pendingBody;
      res.pendingBody = undefined;
      res.queued = false;
      try {
        if (body === undefined) res.end();
        else res.end(body);
      } catch (err) {
        // One answer's fault never keeps the rest of the turn's unwritten.
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  private common: readonly string[] = NONE;
  private pendingBody: Buffer | undefined;
  private queued = false;

  /** Headers for every answer to this request, written with its head (a flat name, value list). */
  setCommonHeaders(list: readonly string[]): void {
    this.common = list;
  }

  /** Whether nothing was set through setHeader: a writeHead with a list takes the fast path. */
  get headersUntouched(): boolean {
    return this.getHeaderNames().length === 0;
  }

  /**
   * Ends the answer (its head already written with writeHead) with `body` once the requests that
   * arrived in this turn of the event loop have been handled, all of the turn's answers written
   * back to back. Each write on loopback wakes the client's thread if it sleeps, and under a
   * single-threaded client (ab, wrk: bench rows 20-23) answers written one per handler woke it
   * once per answer: 21 % of the main thread's time in the kernel's sock_def_readable wake-up
   * (perf, blob HEAD). Written together, one wake-up serves several: blob HEAD 36,000 → 44,700 a
   * second, tags/list 36,000 → 46,000, manifest GET 33,000 → 43,000 (32 connections). The delay is
   * the rest of the turn: the handlers of the requests already read, no more.
   */
  endSoon(body?: Buffer): void {
    this.pendingBody = body;
    this.queued = true;
    const queue = RegistryResponse.turnQueue;
    queue.push(this);
    if (queue.length === 1) setImmediate(RegistryResponse.endQueued);
  }

  /** Whether endSoon was called and the end is still to be written: the answer is decided. */
  get endingSoon(): boolean {
    return this.queued;
  }

  override writeHead(
    statusCode: number,
    reason?: string | http.OutgoingHttpHeaders | http.OutgoingHttpHeader[],
    headers?: http.OutgoingHttpHeaders | http.OutgoingHttpHeader[],
  ): this {
    const common = this.common;
    const message = typeof reason === 'string' ? reason : undefined;
    let list = typeof reason === 'string' ? headers : reason;
    if (common.length > 0) {
      if (this.headersUntouched && (list === undefined || isFlatList(list))) {
        list = [...common, ...(list ?? [])];
      } else {
        // A header the handler set itself stays as it set it.
        for (let i = 0; i < common.length; i += 2) {
          if (!this.hasHeader(common[i]!)) this.setHeader(common[i]!, common[i + 1]!);
        }
      }
    }
    if (message === undefined) super.writeHead(statusCode, list);
    else super.writeHead(statusCode, message, list);
    // Kept until the head is written: when Node refuses a value, the error answer carries them.
    this.common = NONE;
    return this;
  }
}

function isFlatList(headers: http.OutgoingHttpHeaders | http.OutgoingHttpHeader[]): headers is string[] {
  return Array.isArray(headers) && (headers.length === 0 || typeof headers[0] === 'string');
}
