/**
 * Tests that load built files (dist/worker.js, the webview bundles) rebuild them with `node esbuild.js` when one
 * is missing or older than its sources, so a test never runs yesterday's bundle.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Runs esbuild.js when any of `outputs` (under dist/) is missing or older than the newest file in `sourceDirs` (under the root). */
export function ensureBuilt(outputs: string[], sourceDirs: string[]): void {
  const sources = Math.max(...sourceDirs.map((d) => newestMtime(path.join(ROOT, d))));
  const stale = outputs.some((f) => {
    const out = path.join(ROOT, 'dist', f);
    return !fs.existsSync(out) || fs.statSync(out).mtimeMs < sources;
  });
  if (stale) execFileSync(process.execPath, ['esbuild.js'], { cwd: ROOT, stdio: 'inherit' });
}
