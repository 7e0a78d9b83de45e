/**
 * The clock every TTL, schedule and budget decision in the Durable Object reads.
 *
 * One module-level object rather than a field on the instance, so that a test that moves time keeps moving it
 * for a DO that restarts mid-test (its constructor and load already read the test's time). Production never
 * touches it. It is module state, not reachable over RPC.
 */
export const clock = {
  now: (): number => Date.now(),
  /** Uniform in [0, 1): TTL jitter (tests replace it to pin the jitter). */
  random: (): number => Math.random(),
};

/** Restores the real clock (tests). */
export function useRealClock(): void {
  clock.now = () => Date.now();
  clock.random = () => Math.random();
}
