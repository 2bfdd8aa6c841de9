/**
 * "Show Model Strategies" (issue #14 item 3): Explorer context on a labelled dataset folder (`<root>/<class>/<image>`)
 * or a CSV/JSON label file, the triage panel's button (with its dataset and model), or the palette with a folder
 * picker. The model is chosen as for the triage panel (ModelChoice), unless the caller names one. Also registers the
 * strategies panel's serializer, so a panel open at shutdown comes back (and analyses again) after a reload.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { EngineClient } from '../engineClient';
import type { Log } from '../log';
import type { ModelChoice } from '../modelChoice';
import { STRATEGIES_VIEW_TYPE, StrategiesPanels } from '../panels/strategiesPanel';

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

const LABEL_FILE = /\.(csv|json)$/i;

export function registerShowStrategies(services: Services): vscode.Disposable {
  const panels = new StrategiesPanels(services);
  // `options.model` (from the triage panel): analyse with the model the triage scanned with.
  const command = vscode.commands.registerCommand('camLens.showStrategies', async (uri?: vscode.Uri, options?: { model?: string }) => {
    let target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({
        canSelectFiles: true,
        canSelectFolders: true,
        canSelectMany: false,
        filters: { 'Label files': ['csv', 'json'] },
        openLabel: 'Analyse this dataset',
        title: 'Show the model\'s strategies in… (a folder of <class>/<image> folders, or a CSV/JSON label file)',
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
      void vscode.window.showErrorMessage(`CAM Lens analyses a folder of class folders, or a CSV/JSON label file; ${path.basename(target.fsPath)} is neither.`);
      return;
    }
    await panels.show(target, typeof options?.model === 'string' ? options.model : undefined);
  });
  return vscode.Disposable.from(command, vscode.window.registerWebviewPanelSerializer(STRATEGIES_VIEW_TYPE, panels));
}
