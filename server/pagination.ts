// `n` / `last` pagination of tag and catalog listings, with the RFC 5988 Link header the
// distribution spec describes.
import type { Page } from '../storage/metadata-store.js';
import { OciError } from './errors.js';
import { queryParam, textParam, type Ctx } from './context.js';

export interface PageRequest extends Page {
  /** Entries the client asked for; `limit` is one more, to learn whether a next page exists. */
  n: number;
}

/** `?last=`, the cursor a listing continues after; a 400 when the database could not compare it. */
export function lastParam(ctx: Ctx): string | undefined {
  // A cursor is compared with names in the database.
  return textParam(ctx, 'last');
}

export function parsePage(ctx: Ctx, defaultN: number, maxN: number): PageRequest {
  const rawN = queryParam(ctx, 'n');
  let n = defaultN;
  if (rawN !== undefined && rawN !== '') {
    if (!/^\d{1,9}$/.test(rawN)) throw new OciError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { n: rawN });
    n = Math.min(Number(rawN), maxN);
  }
  const last = lastParam(ctx);
  return { n, limit: n + 1, ...(last ? { last } : {}) };
}

/** Trims the over-fetched entry and sets `Link` when there is a next page. */
export function finishPage(ctx: Ctx, path: string, page: PageRequest, entries: string[]): string[] {
  if (page.n === 0) return [];
  if (entries.length <= page.n) return entries;
  const shown = entries.slice(0, page.n);
  const last = shown[shown.length - 1]!;
  ctx.set('Link', `<${path}?n=${page.n}&last=${encodeURIComponent(last)}>; rel="next"`);
  return shown;
}
