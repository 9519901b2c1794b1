import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The parity figures through the *built* package, as a user of @sluice/core gets it.
const script = fileURLToPath(new URL('../../../scripts/hash-parity.mjs', import.meta.url));
const golden =
  process.env.SLUICE_GOLDEN_DIR ??
  fileURLToPath(new URL('../../../../shared/prodigy-golden', import.meta.url));
const haveGolden = existsSync(golden);
if (!haveGolden) console.warn(`skipping built-package hash parity: no golden data at ${golden}`);

describe.skipIf(!haveGolden)(
  'hash parity of the built @sluice/core on real Prodigy exports',
  () => {
    it('matches all input hashes but one and every pydata task hash', () => {
      const run = spawnSync(process.execPath, [script, golden], { encoding: 'utf8' });
      console.log(run.stdout);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(/10628\s*\/\s*10629/);
      expect(run.stdout).toMatch(/3372\s*\/\s*3372/);
    });
  },
);
