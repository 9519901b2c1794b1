import { afterEach, beforeEach } from 'vitest';

/** A fresh fixture for every test of the enclosing `describe`, cleaned up after it. */
export function useFixture<F extends { cleanup(): Promise<void> }>(
  setup: () => Promise<F>,
): { fixture: F } {
  const state = {} as { fixture: F };
  beforeEach(async () => {
    state.fixture = await setup();
  });
  afterEach(async () => {
    await state.fixture.cleanup();
  });
  return state;
}
