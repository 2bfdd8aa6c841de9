/**
 * The CI guard on pending tests (test/helpers/ciPending.ts): with CI=true a run fails when any test is pending for
 * a reason other than another OS; without CI it passes and lists them. Runs a child mocha on a sample spec.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');

function mocha(env: Record<string, string>): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--no-config', '-r', 'tsx/cjs',
    '-r', 'test/helpers/ciPending.ts', '--reporter', 'dot', 'test/fixtures/ciPending/sample.spec.ts'], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: '', SAMPLE_EXTRA_SKIPS: '', ...env },
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('CI guard on pending tests', function () {
  this.timeout(60000);

  it('fails a CI run on tests skipped for ../shared, Chromium or no reason, naming each', () => {
    const r = mocha({ CI: 'true', SAMPLE_EXTRA_SKIPS: '1' });
    assert.notStrictEqual(r.status, 0, r.out);
    assert.match(r.out, /CI=true: 3 test\(s\) pending for a reason other than another OS/);
    assert.match(r.out, /needs \.\.\/shared \(shared-absent\)/);
    assert.match(r.out, /skipped bare \(skipped without a reason\)/);
    assert.match(r.out, /a browser suite draws \(chromium-absent\)/);
  });

  it('lets a CI run pass when only tests for another OS are pending', () => {
    const r = mocha({ CI: 'true' });
    assert.strictEqual(r.status, 0, r.out);
  });

  it('passes outside CI and lists what CI would refuse', () => {
    const r = mocha({ SAMPLE_EXTRA_SKIPS: '1' });
    assert.strictEqual(r.status, 0, r.out);
    assert.match(r.out, /3 test\(s\) skipped on this machine \(CI=true would fail on them\)/);
  });
});
