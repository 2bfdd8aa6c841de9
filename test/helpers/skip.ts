/**
 * Skipping a test or a suite, always with a reason and its kind, and the CI guard over them.
 *
 * A skipped test hides whatever it was meant to catch, so each skip says why (printed where it happens) and of
 * which kind it is. On a developer's machine any kind may skip. Under CI (`CI=true`, where ../shared, Chromium
 * and the e2e tools are all present: `npm test` installs them before mocha) only `other-os` may: any other
 * pending test, or one skipped without this helper (`it.skip`, a bare `this.skip()`), fails the run through the
 * root hook in ciPending.ts.
 */
export type SkipKind =
  /** The behaviour exists only on another operating system (thread priorities on Linux, say). */
  | 'other-os'
  /** ../shared/reference (real models and images made elsewhere) is not next to the clone. */
  | 'shared-absent'
  /** Debian's Chromium, which the webview UI tests drive, is not installed. */
  | 'chromium-absent'
  /** An optional dependency (onnxruntime-node) did not install or does not load on this platform. */
  | 'optional-absent'
  /** The npm registry cannot be reached for a package not yet in npm's cache (the other platforms' sharp builds). */
  | 'registry-unreachable';

const reasons = new WeakMap<object, SkipKind>();

/** Skips the calling test, or from a `before` hook the whole suite, printing the reason. */
export function skipBecause(ctx: Mocha.Context, kind: SkipKind, reason: string): never {
  console.log(`      (skipped: ${reason})`);
  const runnable = ctx.test;
  // From a hook the skip covers the hook's suite; from a test, the test itself.
  const key = (runnable as { type?: string } | undefined)?.type === 'hook' ? runnable?.parent : runnable;
  if (key) reasons.set(key, kind);
  ctx.skip();
}

/** The kind a pending test was skipped with (its own, or its nearest suite's), if it went through skipBecause. */
export function skipKindOf(test: Mocha.Test): SkipKind | undefined {
  let node: Mocha.Test | Mocha.Suite | undefined = test;
  while (node) {
    const kind = reasons.get(node);
    if (kind) return kind;
    node = node.parent;
  }
  return undefined;
}

/** Kinds allowed to skip under CI. */
export const CI_ALLOWED_SKIPS: readonly SkipKind[] = ['other-os'];

/** Every pending test under `suite` that CI does not allow, as "full title (kind)". */
export function unexpectedPending(suite: Mocha.Suite): string[] {
  const out: string[] = [];
  const walk = (s: Mocha.Suite): void => {
    for (const t of s.tests) {
      if (!t.isPending()) continue;
      const kind = skipKindOf(t);
      if (!kind || !CI_ALLOWED_SKIPS.includes(kind)) out.push(`${t.fullTitle()} (${kind ?? 'skipped without a reason'})`);
    }
    for (const child of s.suites) walk(child);
  };
  walk(suite);
  return out;
}
