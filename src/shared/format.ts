/** Number and text formatting shared by the panels. Pure. */

/** 0.3456 -> "34.6%"; tiny non-zero probabilities say so instead of rounding to "0.0%". */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return '–';
  const pct = p * 100;
  if (pct > 0 && pct < 0.05) return '<0.1%';
  return `${pct.toFixed(1)}%`;
}

/** Milliseconds for the status line: "12 ms", "1.4 s". */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '– ms';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A duration for estimates and time left: "0.4 s", "12 s", "3 min 05 s", "1 h 02 min". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 59.5) return `${Math.round(s)} s`;
  const m = Math.floor(Math.round(s) / 60);
  if (m < 60) return `${m} min ${String(Math.round(s) - m * 60).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m - h * 60).padStart(2, '0')} min`;
}

/** Total time of a computation: `total` where the host gives it, else the sum of the phases. */
export function totalMs(timings: Record<string, number>): number {
  if (typeof timings.total === 'number') return timings.total;
  let sum = 0;
  for (const v of Object.values(timings)) if (typeof v === 'number' && Number.isFinite(v)) sum += v;
  return sum;
}

/** 3228864 -> "3,228,864" (fixed grouping, independent of the webview's locale so tests are stable). */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '–';
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** [null, 7, 7, 1024] -> "[?, 7, 7, 1024]"; the batch dimension shows as "?". */
export function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/** A statistic in a channel readout: 4 significant digits, exponent for very small or large magnitudes. */
export function formatStat(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  return a < 1e-3 || a >= 1e5 ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
}
