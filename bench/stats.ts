export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) throw new RangeError('no samples');
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i] as number;
}

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The median over `runs` of one of their measures (a run taken in rounds: its median round). */
export const medianOf = <K extends string>(runs: readonly Record<K, number>[], of: K): number =>
  percentile(
    runs.map((r) => r[of]),
    50,
  );
