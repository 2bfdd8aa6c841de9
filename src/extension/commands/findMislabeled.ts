/**
 * "Find Likely Mislabeled Samples": Explorer context on a dataset folder (`<root>/<class>/<image>`) or on a CSV/JSON
 * label file, or the palette with a folder picker. The model is chosen as for the explain panel (ModelChoice:
 * setting, last choice, a model.json next to or above the data, else the picker). Also registers the triage
 * panel's serializer, so a panel open at shutdown comes back (and rescans) after a reload.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { EngineClient } from '../engineClient';
import type { Log } from '../log';
import type { ModelChoice } from '../modelChoice';
import { TRIAGE_VIEW_TYPE, TriagePanels } from '../panels/triagePanel';

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

const LABEL_FILE = /\.(csv|json)$/i;

export function registerFindMislabeled(services: Services): vscode.Disposable {
  const panels = new TriagePanels(services);
  const command = vscode.commands.registerCommand('camLens.findMislabeled', async (uri?: vscode.Uri) => {
    let target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({
        canSelectFiles: false,
        canSelectFolders: true,
        canSelectMany: false,
        openLabel: 'Scan this folder',
        title: 'Find likely mislabeled samples in… (a folder of <class>/<image> folders)',
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      });
      target = picked?.[0];
    }
    if (!target) return;
    if (target.scheme !== 'file') {
      void vscode.window.showErrorMessage(`CAM Lens reads datasets from disk; ${target.toString()} is not a local folder.`);
      return;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(target.fsPath);
    } catch {
      void vscode.window.showErrorMessage(`CAM Lens: ${target.fsPath} does not exist.`);
      return;
    }
    if (!stat.isDirectory() && !LABEL_FILE.test(target.fsPath)) {
      void vscode.window.showErrorMessage(`CAM Lens scans a folder of class folders, or a CSV/JSON label file; ${path.basename(target.fsPath)} is neither.`);
      return;
    }
    await panels.show(target);
  });
  return vscode.Disposable.from(command, vscode.window.registerWebviewPanelSerializer(TRIAGE_VIEW_TYPE, panels));
}
