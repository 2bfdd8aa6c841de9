/**
 * The extension-host suite (test/e2e/suite) under @vscode/test-electron, i.e. in desktop VS Code, for
 * machines that can download VS Code (this project's CI cannot, so CI runs the same suite through
 * code-server instead: scripts/e2e/run.js).
 *
 *   npx tsx test/e2e/electron.ts            # VS Code stable; CAM_LENS_VSCODE_VERSION=1.90.0 for another
 *
 * It builds the extension, lets scripts/e2e/run.js generate the same workspace and bundle the suite
 * (`--prepare`), then starts VS Code with the working tree as the extension under development. VS Code is
 * downloaded into the e2e cache outside the clone (CAM_LENS_E2E_CACHE, default ~/.cache/cam-lens-e2e).
 * Linux without a display needs a virtual one: `xvfb-run -a npx tsx test/e2e/electron.ts`.
 */
import { execFileSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { runTests } from '@vscode/test-electron';

const REPO = path.resolve(__dirname, '..', '..');
const CACHE = process.env.CAM_LENS_E2E_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'cam-lens-e2e');

interface Prepared {
  runDir: string;
  workspace: string;
  suite: string;
  sample: string;
}

async function main(): Promise<void> {
  execFileSync(process.execPath, [path.join(REPO, 'esbuild.js')], { cwd: REPO, stdio: 'inherit' });
  const out = execFileSync(process.execPath, [path.join(REPO, 'scripts', 'e2e', 'run.js'), '--prepare'], { cwd: REPO, encoding: 'utf8' });
  const prepared = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Prepared;
  const code = await runTests({
    version: process.env.CAM_LENS_VSCODE_VERSION ?? 'stable',
    cachePath: path.join(CACHE, 'vscode-test'),
    extensionDevelopmentPath: REPO,
    extensionTestsPath: prepared.suite,
    extensionTestsEnv: { CAM_LENS_E2E_SAMPLE: prepared.sample },
    launchArgs: [prepared.workspace, '--disable-extensions', '--disable-workspace-trust', '--user-data-dir', path.join(prepared.runDir, 'user')],
  });
  if (code !== 0) throw new Error(`extension-host tests exited with ${code}`);
}

main().catch((e) => {
  console.error(`electron e2e: ${(e as Error).message}`);
  process.exit(1);
});
