/**
 * Fixed windows on the real clock are aligned to the epoch (window = floor(now / windowMs)), so a
 * test that counts across several calls fails when a window boundary falls between them: the
 * later calls start a fresh window. Rare for a quick test, certain sooner or later for a long
 * one; a flaky test either way.
 */

/** Waits, when needed, until the current window of `windowMs` has at least `neededMs` left. */
export async function roomInWindow (windowMs: number, neededMs: number): Promise<void> {
  const left = windowMs - (Date.now() % windowMs)
  if (left < neededMs) await new Promise((resolve) => setTimeout(resolve, left + 1))
}
