// Small statistics shared by the benches, so every figure they print means the same thing.

/** The q-quantile of ascending `sorted` (nearest rank); NaN when empty. */
export function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
}

/** The median item by `value` (the lower one of two for an even count); undefined when empty. */
export function medianBy<T>(items: T[], value: (item: T) => number): T | undefined {
  const sorted = [...items].sort((x, y) => value(x) - value(y));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}
