/**
 * confinedPath: the one check behind "weight paths stay inside the model folder" (loader.ts) and "a label
 * file's images stay inside its folder" (scan/dataset.ts). Every way out is tried here once; the loader and
 * dataset tests check that they go through it.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from '../../src/extension/engine/errors';
import { confinedPath, isInside } from '../../src/extension/engine/paths';
import { tempDir } from '../helpers/modelFiles';

describe('confinedPath', () => {
  // <base>/m           the folder whose files name other files
  // <base>/m/w.bin, <base>/m/sub/x.bin, <base>/m/..dots.bin
  // <base>/m-secret/w.bin   a sibling whose name starts with "m"
  // <base>/outside.bin
  // <base>/m/link-out.bin -> ../outside.bin;  <base>/m/dir-out -> ../m-secret;  <base>/m/link-in.bin -> sub/x.bin
  // <base>/alias -> m       the folder reached through a symlink
  let base: string;
  let m: string;
  before(() => {
    base = fs.realpathSync(tempDir('cam-lens-paths-'));
    m = path.join(base, 'm');
    fs.mkdirSync(path.join(m, 'sub'), { recursive: true });
    fs.mkdirSync(path.join(base, 'm-secret'));
    for (const f of ['m/w.bin', 'm/sub/x.bin', 'm/..dots.bin', 'm-secret/w.bin', 'outside.bin']) fs.writeFileSync(path.join(base, f), 'x');
    fs.symlinkSync(path.join(base, 'outside.bin'), path.join(m, 'link-out.bin'));
    fs.symlinkSync(path.join(base, 'm-secret'), path.join(m, 'dir-out'));
    fs.symlinkSync(path.join(m, 'sub', 'x.bin'), path.join(m, 'link-in.bin'));
    fs.symlinkSync(m, path.join(base, 'alias'));
  });

  const escapes: Array<[string, () => string, RegExp]> = [
    ['a parent path', () => '../outside.bin', /resolves to .*outside\.bin, outside the model folder/],
    ['a parent path two levels up', () => '../../etc/passwd', /resolves to .*passwd, outside/],
    ['a sibling folder sharing the prefix', () => '../m-secret/w.bin', /resolves to .*m-secret.w\.bin, outside the model folder .*m$/],
    ['a sibling prefix reached through a subfolder', () => 'sub/../../m-secret/w.bin', /m-secret.w\.bin, outside/],
    ['a missing file in the sibling folder', () => '../m-secret/none.bin', /m-secret.none\.bin, outside/],
    ['an absolute path outside', () => path.join(base, 'outside.bin'), /an absolute path, outside/],
    ['an absolute path into the sibling folder', () => path.join(base, 'm-secret', 'w.bin'), /an absolute path, outside/],
    ['/etc/passwd', () => '/etc/passwd', /an absolute path, outside/],
    ['a symlinked file leading out', () => 'link-out.bin', /links to .*outside\.bin, outside/],
    ['a file below a symlinked folder leading out', () => 'dir-out/w.bin', /links to .*m-secret.w\.bin, outside/],
    ['a missing file below a symlinked folder leading out', () => 'dir-out/none.bin', /links to .*m-secret.none\.bin, outside/],
    ['a %-encoded parent path', () => '%2e%2e/outside.bin', /resolves to .*outside\.bin, outside/],
  ];
  for (const [what, rel, pattern] of escapes) {
    it(`refuses ${what}`, () => {
      assert.throws(() => confinedPath(m, rel(), { what: 'weight file', folderName: 'the model folder', urlEncoded: true }), (e: unknown) => {
        assert.ok(e instanceof CamLensError, String(e));
        assert.strictEqual(e.code, 'WEIGHT_PATH_ESCAPE', e.message);
        assert.match(e.message, pattern);
        assert.ok(e.message.startsWith(`refusing weight file "${rel()}"`), e.message);
        return true;
      });
    });
  }

  const invalid: Array<[string, string, RegExp]> = [
    ['an empty path', '', /is empty/],
    ['a NUL byte', 'w.bin\0.png', /NUL byte/],
    ['a URL', 'https://example.com/w.bin', /a URL is not a file/],
    ['the folder itself', '.', /names the model folder itself/],
    ['a malformed %-escape', 'w%zz.bin', /malformed %-escape/],
  ];
  for (const [what, rel, pattern] of invalid) {
    it(`refuses ${what} as no file path`, () => {
      assert.throws(() => confinedPath(m, rel, { folderName: 'the model folder', urlEncoded: true, invalidCode: 'BAD_ARGUMENT' }),
        (e: unknown) => e instanceof CamLensError && e.code === 'BAD_ARGUMENT' && pattern.test(e.message));
    });
  }

  const inside: Array<[string, () => string, () => string]> = [
    ['a file in the folder', () => 'w.bin', () => path.join(m, 'w.bin')],
    ['a nested file', () => 'sub/x.bin', () => path.join(m, 'sub', 'x.bin')],
    ['a path that leaves and re-enters the folder', () => '../m/sub/../w.bin', () => path.join(m, 'w.bin')],
    ['a "./" path', () => './w.bin', () => path.join(m, 'w.bin')],
    ['a file whose name starts with two dots', () => '..dots.bin', () => path.join(m, '..dots.bin')],
    ['a missing file (the caller says it is missing)', () => 'sub/none.bin', () => path.join(m, 'sub', 'none.bin')],
    ['a symlink that stays inside', () => 'link-in.bin', () => path.join(m, 'link-in.bin')],
    ['an absolute path inside', () => path.join(m, 'sub', 'x.bin'), () => path.join(m, 'sub', 'x.bin')],
    ['a %-encoded name', () => 'sub%2Fx.bin', () => path.join(m, 'sub', 'x.bin')],
  ];
  for (const [what, rel, expected] of inside) {
    it(`accepts ${what}`, () => {
      assert.strictEqual(confinedPath(m, rel(), { urlEncoded: true }), expected());
    });
  }

  it('confines to the real folder when the folder is reached through a symlink', () => {
    const alias = path.join(base, 'alias');
    assert.strictEqual(confinedPath(alias, 'sub/x.bin'), path.join(m, 'sub', 'x.bin'));
    assert.throws(() => confinedPath(alias, '../m-secret/w.bin'), /outside the folder/);
    assert.throws(() => confinedPath(alias, '../alias-not/w.bin'), /outside the folder/);
  });

  it('takes "%" literally unless the paths are URL-encoded', () => {
    fs.writeFileSync(path.join(m, '50%.png'), 'x');
    assert.strictEqual(confinedPath(m, '50%.png'), path.join(m, '50%.png'));
  });

  it('isInside compares path segments, not string prefixes', () => {
    assert.ok(isInside('/a/m', '/a/m'));
    assert.ok(isInside('/a/m', '/a/m/w.bin'));
    assert.ok(isInside('/a/m', '/a/m/..w.bin'));
    assert.ok(!isInside('/a/m', '/a/m-secret/w.bin'));
    assert.ok(!isInside('/a/m', '/a/mm'));
    assert.ok(!isInside('/a/m', '/a'));
    assert.ok(isInside('/', '/etc/passwd'));
  });
});
