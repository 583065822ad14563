/** A closed loop: a fixed number of calls in flight, each followed at once by the next. */

/** What a closed loop did: calls ended, per second, and this process's CPU time (µs) per call. */
export type InFlightRun = { done: number; perSecond: number; cpuUs: number };

/** `concurrency` loops, each calling `step` again as soon as it returns, until `ms` have passed. */
export async function inFlight(concurrency: number, ms: number, step: () => Promise<void>): Promise<InFlightRun> {
  const end = performance.now() + ms;
  let done = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await step();
        done++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { done, perSecond: done / ((performance.now() - start) / 1000), cpuUs: (used.user + used.system) / done };
}
