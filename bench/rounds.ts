// Measurements repeated in rounds that alternate between the registries (the order flipping each
// round), so that a drift of this host's speed falls on all of them; the median counts.
import { median } from './table.js';

/**
 * Runs `fn` for each entity in `rounds` rounds, the order flipping each round. An entity that
 * fails is left out of the later rounds: per entity, the results of its rounds, or its failure.
 */
export async function alternate<E extends { label: string }, T>(
  entities: E[],
  rounds: number,
  what: string,
  fn: (entity: E, round: number) => Promise<T>,
): Promise<Map<E, T[] | Error>> {
  const results = new Map<E, T[] | Error>(entities.map((e) => [e, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? entities : [...entities].reverse();
    for (const entity of order) {
      const sofar = results.get(entity)!;
      if (sofar instanceof Error) continue;
      try {
        sofar.push(await fn(entity, round));
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        process.stderr.write(`  ${entity.label}: ${what}, round ${round + 1} failed: ${error.message}\n`);
        results.set(entity, error);
      }
    }
  }
  return results;
}

/** The median of one figure of an entity's rounds, or its failure. */
export function medianOf<T>(results: T[] | Error, pick: (result: T) => number): number | Error {
  return results instanceof Error ? results : median(results.map(pick));
}

/**
 * Measures `a` and `b` one after the other, `b` first when `flip`: two figures compared with each
 * other take turns at going first. Resolves with both, `a`'s first.
 */
export async function inTurn<T>(a: () => Promise<T>, b: () => Promise<T>, flip: boolean): Promise<[T, T]> {
  if (!flip) {
    const first = await a();
    return [first, await b()];
  }
  const second = await b();
  return [await a(), second];
}
