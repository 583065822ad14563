/** The grant periods a person can choose, in the consent window and the options page. */
export const GRANT_PERIODS: readonly (readonly [seconds: number, label: string])[] = [
  [3600, '1 hour'],
  [8 * 3600, '8 hours'],
  [24 * 3600, '24 hours'],
  [7 * 24 * 3600, '7 days'],
  [30 * 24 * 3600, '30 days'],
];
