import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** Young generation a source CLI lets V8 grow to: past this, scavenges gain little. */
const YOUNG_GENERATION_BYTES = 16 * 1024 * 1024;
/** Old generation allowed past what the last full collection found live, in percent. */
const OLD_GENERATION_GROWTH_PERCENT = 75;
/** The user's own choice of these (NODE_OPTIONS, node flags) wins. */
const HEAP_FLAGS =
  /--(?:max-semi-space-size|min-semi-space-size|semi-space-growth-factor|heap-growing-percent)\b/;

/**
 * Keeps a long-running source's memory near what it uses. On a machine with a lot of memory,
 * V8 lets the young generation grow to 64 MiB a semi-space and the old one to three or four
 * times what is live, so a source streaming a million keys peaks near 300 MB while it holds
 * about 20. These are V8 settings that take effect at run time: the young generation stops
 * growing once it reaches 16 MiB, and a full collection comes once the old one grows by 75%.
 * A few percent more CPU; nothing changes when the user set these flags, or when a Node
 * version ignores them.
 */
export function keepHeapSmall(env: NodeJS.ProcessEnv = process.env): void {
  if (HEAP_FLAGS.test(`${env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`)) return;
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWTH_PERCENT}`);
  const young = () =>
    getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
  // V8 grows the young generation after a scavenge, doubling it: stop it past the size here.
  const observer = new PerformanceObserver(() => {
    if (young() < YOUNG_GENERATION_BYTES) return;
    setFlagsFromString('--semi-space-growth-factor=1');
    observer.disconnect();
  });
  observer.observe({ entryTypes: ['gc'] });
}
