// The result table: one row per workload, each registry's figure, the ratio, the target, a verdict.

export type Figure = { value: number } | { error: string };
export type Target =
  | { kind: 'ratio'; min: number }
  | { kind: 'below'; max: number }
  /** Signet's figure against Signet's own figure in another row (e.g. with and without auth). */
  | { kind: 'of-row'; row: Row; min: number }
  /** Signet's figure under a plain limit in the row's unit. */
  | { kind: 'under'; max: number }
  /** Signet's figure within a plain range in the row's unit (a ratio that should be near 1). */
  | { kind: 'between'; min: number; max: number }
  /** A figure shown for the record, with no target (and the ratio, when both registries have one). */
  | { kind: 'info' };

export interface Row {
  label: string;
  unit: string;
  target: Target;
  /** By server label. */
  figures: Map<string, Figure>;
}

export class Table {
  readonly rows: Row[] = [];

  add(label: string, unit: string, target: Target): Row {
    const row = { label, unit, target, figures: new Map<string, Figure>() };
    this.rows.push(row);
    return row;
  }

  /** Prints the table and a closing line counting the targets met. */
  print(signet: string, go: string | undefined): void {
    const lines: string[][] = [['#', 'workload', 'Signet', 'Go registry', 'ratio', 'target', 'result']];
    let passed = 0;
    let judged = 0;
    this.rows.forEach((row, i) => {
      const s = row.figures.get(signet);
      const g = go === undefined ? undefined : row.figures.get(go);
      const { ratio, target, verdict } = judge(row, value(s), value(g), go !== undefined);
      if (verdict === 'PASS' || verdict === 'FAIL') judged++;
      if (verdict === 'PASS') passed++;
      lines.push([String(i + 1), row.label, cell(s, row.unit), go ? cell(g, row.unit) : 'n/a', ratio, target, verdict]);
    });
    const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => [...l[c]!].length)));
    const render = (l: string[]): string =>
      l
        .map((v, c) => (c >= 2 && c <= 4 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd();
    console.log('');
    console.log(render(lines[0]!));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const l of lines.slice(1)) console.log(render(l));
    console.log('');
    const skipped = this.rows.filter((row) => row.target.kind !== 'info').length - judged;
    console.log(`bench: ${passed} of ${judged} targets passed${skipped ? ` (${skipped} skipped: no Go registry to compare with)` : ''}`);
  }
}

function judge(
  row: Row,
  s: number | undefined,
  g: number | undefined,
  haveGo: boolean,
): { ratio: string; target: string; verdict: 'PASS' | 'FAIL' | 'SKIP' | '—' } {
  if (row.target.kind === 'info') {
    return { ratio: s !== undefined && g !== undefined && g > 0 ? `${(s / g).toFixed(2)}x` : '—', target: '—', verdict: '—' };
  }
  if (row.target.kind === 'of-row') {
    const base = [...row.target.row.figures.values()].map((f) => ('value' in f ? f.value : undefined))[0];
    const target = `≥ ${row.target.min}x row "${row.target.row.label.split(',')[0]}"`;
    if (s === undefined || base === undefined || base <= 0) return { ratio: '—', target, verdict: 'FAIL' };
    return { ratio: `${(s / base).toFixed(2)}x`, target, verdict: s / base >= row.target.min ? 'PASS' : 'FAIL' };
  }
  if (row.target.kind === 'under') {
    const target = `Signet < ${row.target.max} ${row.unit}`;
    return { ratio: '—', target, verdict: s !== undefined && s < row.target.max ? 'PASS' : 'FAIL' };
  }
  if (row.target.kind === 'between') {
    const target = `${row.target.min} ≤ Signet ≤ ${row.target.max}`;
    return { ratio: '—', target, verdict: s !== undefined && s >= row.target.min && s <= row.target.max ? 'PASS' : 'FAIL' };
  }
  if (row.target.kind === 'below') {
    const target = `Signet < ${row.target.max / 1e6} ${row.unit}`;
    return { ratio: '—', target, verdict: s !== undefined && s * 1e6 < row.target.max ? 'PASS' : 'FAIL' };
  }
  const target = `≥ ${row.target.min}x Go`;
  if (s === undefined || g === undefined || g <= 0) return { ratio: '—', target, verdict: haveGo ? 'FAIL' : 'SKIP' };
  return { ratio: `${(s / g).toFixed(2)}x`, target, verdict: s / g >= row.target.min ? 'PASS' : 'FAIL' };
}

function value(figure: Figure | undefined): number | undefined {
  return figure && 'value' in figure ? figure.value : undefined;
}

function cell(figure: Figure | undefined, unit: string): string {
  if (!figure) return 'n/a';
  return 'error' in figure ? 'ERROR' : `${format(figure.value, unit)} ${unit}`;
}

/** The middle value (the upper middle of an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export function format(value: number, unit: string): string {
  if (unit === 'MiB/s' || unit === 'MB' || unit === 'KB') return value.toFixed(1);
  if (unit === 'ms') return value.toFixed(3);
  if (unit === 'ms/MiB' || unit === 'ms/op') return value.toFixed(2);
  if (unit === 'x') return value.toFixed(2);
  return Math.round(value).toLocaleString('en-US');
}
