import { describe, expect, it } from 'vitest';
import { runMoto } from '../src/s3.js';
import { type TortureStore, torture, torturePassed, tortureTable } from '../src/torture.js';

// The short run of `npm run torture`: the built fs-sink and s3-sink CLIs killed at random
// moments, on a full disk, and as concurrent writers; every count must be zero.
describe('torture harness, short run', () => {
  it('keeps every export readable, whole and free of leftovers', async () => {
    const stores: TortureStore[] = runMoto ? ['fs', 'moto'] : ['fs'];
    const figures = await torture({
      stores,
      kills: 2,
      writers: 1,
      writerCounts: [2, 3],
      disks: 1,
      lines: 1500,
      seed: 19,
    });
    expect(
      figures.filter((figure) => !torturePassed([figure])),
      tortureTable(figures),
    ).toEqual([]);
    for (const store of stores) {
      const scenarios = figures.filter((figure) => figure.store === store);
      expect(scenarios.map((figure) => figure.runs).every((runs) => runs > 0)).toBe(true);
      expect(scenarios.some((figure) => figure.scenario.startsWith('kill -9'))).toBe(true);
    }
  }, 600_000);
});
