/**
 * Entry for `extensionTestsPath`: the extension host `require`s this file (bundled to JavaScript by the
 * runner) and awaits `run()`; a rejection marks the run failed. Each test's outcome is also logged as one
 * line, `cam-lens-e2e: pass|fail <title>[ :: <reason>]`, which scripts/e2e/run.js counts.
 */
import Mocha from 'mocha';
import { defineExtensionTests } from './extension.e2e';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: false, reporter: 'spec', timeout: 90000 });
  // The tests are part of this bundle rather than files for mocha to load: give them mocha's globals
  // (describe, it, after) the way mocha does before it requires a spec file.
  mocha.suite.emit('pre-require', globalThis, 'extension.e2e', mocha);
  defineExtensionTests();
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} extension-host test(s) failed`)) : resolve()));
    runner.on('pass', (t) => console.log(`cam-lens-e2e: pass ${t.fullTitle()}`));
    runner.on('fail', (t, err: Error) => console.log(`cam-lens-e2e: fail ${t.fullTitle()} :: ${String(err?.message ?? err).split('\n')[0]}`));
  });
}
