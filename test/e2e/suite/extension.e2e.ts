/**
 * Extension-host tests: they run inside a real VS Code extension host with the real `vscode` API, loaded
 * through `extensionTestsPath`, either by scripts/e2e/run.js (code-server + headless Chromium) or by
 * test/e2e/electron.ts (@vscode/test-electron, desktop VS Code). The workspace is the one the runner
 * generates: sample PNGs, broken.png, model/ and .vscode/settings.json pointing camLens.model at it.
 *
 * Named *.e2e.ts so that the plain `mocha` run (test/**\/*.test.ts) does not pick it up.
 */
import * as assert from 'assert';
import * as path from 'path';
import * as vscode from 'vscode';

export const EXTENSION_ID = 'cam-lens.cam-lens';
export const COMMANDS = ['camLens.showCam', 'camLens.inspectModel', 'camLens.findMislabeled', 'camLens.showStrategies', 'camLens.selectModel',
  'camLens.compareWithModel', 'camLens.compareModelsOnFolder'];

async function poll<T>(what: string, probe: () => T | undefined, timeoutMs = 30000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function allTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs);
}

function workspaceRoot(): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the runner opens a workspace folder');
  return folder.uri;
}

/** The sample the runner chose (CAM_LENS_E2E_SAMPLE), else the first PNG at the top of the workspace. */
async function sampleImage(): Promise<vscode.Uri> {
  const root = workspaceRoot();
  const named = process.env.CAM_LENS_E2E_SAMPLE;
  if (named) return vscode.Uri.joinPath(root, named);
  const pngs = (await vscode.workspace.findFiles('*.png')).filter((u) => path.basename(u.fsPath) !== 'broken.png');
  pngs.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  assert.ok(pngs.length > 0, 'the workspace holds at least one sample PNG');
  return pngs[0];
}

export function defineExtensionTests(): void {
  describe('CAM Lens in a VS Code extension host', function () {
    this.timeout(90000);

    after(async () => {
      // Leave no editors behind: a later workbench on the same user-data-dir would restore them.
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    });

    it('activates the extension', async () => {
      const ext = vscode.extensions.getExtension(EXTENSION_ID);
      assert.ok(ext, `${EXTENSION_ID} is loaded in the extension host`);
      // activationEvents is empty (implicit onCommand activation): activate explicitly before asking for commands.
      await ext.activate();
      assert.strictEqual(ext.isActive, true);
      // Models and images live with the workspace: in a remote window the engine runs on the remote side.
      assert.strictEqual(ext.extensionKind, vscode.ExtensionKind.Workspace, 'runs where the workspace is');
    });

    it('registers every command the manifest contributes', async () => {
      const registered = new Set(await vscode.commands.getCommands(true));
      const contributed = ((vscode.extensions.getExtension(EXTENSION_ID)?.packageJSON?.contributes?.commands ?? []) as { command: string }[]).map((c) => c.command);
      for (const c of COMMANDS) assert.ok(contributed.includes(c), `the manifest contributes ${c}`);
      const missing = contributed.filter((c) => !registered.has(c));
      assert.deepStrictEqual(missing, [], `commands not registered: ${missing.join(', ')}`);
    });

    it('opens a webview tab titled "CAM: <image>" when camLens.showCam runs on a sample', async () => {
      const image = await sampleImage();
      const label = `CAM: ${path.basename(image.fsPath)}`;
      await vscode.commands.executeCommand('camLens.showCam', image);
      // The tab model reaches the extension host asynchronously after the command: poll for it.
      const tab = await poll(`a tab labelled "${label}" (tabs: ${allTabs().map((t) => t.label).join(', ')})`,
        () => allTabs().find((t) => t.label === label));
      assert.ok(tab.input instanceof vscode.TabInputWebview, `"${label}" is a webview tab`);
    });

    it('opens another webview tab when camLens.inspectModel runs on model.json', async () => {
      const modelJson = vscode.Uri.joinPath(workspaceRoot(), 'model', 'model.json');
      const before = allTabs().filter((t) => t.input instanceof vscode.TabInputWebview).length;
      await vscode.commands.executeCommand('camLens.inspectModel', modelJson);
      const webviews = await poll('a new webview tab', () => {
        const n = allTabs().filter((t) => t.input instanceof vscode.TabInputWebview).length;
        return n > before ? n : undefined;
      });
      assert.strictEqual(webviews, before + 1);
    });
  });
}
