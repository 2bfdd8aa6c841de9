/**
 * Two models side by side (issue #14 item 4):
 * - "Compare with Another Model…" (`camLens.compareWithModel`): the explain panel's button runs it with its image,
 *   model, method and class; from the palette it asks for an image. The second model comes from the model picker
 *   (ModelChoice.pick, without changing the active model).
 * - "Compare Two Models on Folder" (`camLens.compareModelsOnFolder`): Explorer context on a dataset folder or label
 *   file, or the palette with a folder picker; model A is the active model (or the picker's), model B the picker's.
 * Both open the compare panel (panels/comparePanel.ts), whose serializer is registered here too.
 */
import * as fs from 'fs';
import * as vscode from 'vscode';
import type { EngineClient } from '../engineClient';
import type { Log } from '../log';
import type { ModelChoice } from '../modelChoice';
import { COMPARE_VIEW_TYPE, ComparePanels } from '../panels/comparePanel';

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

export function registerCompareModels(services: Services): vscode.Disposable {
  const panels = new ComparePanels(services);
  const withModel = vscode.commands.registerCommand('camLens.compareWithModel', async (image?: vscode.Uri, modelA?: string, method?: string, classLabel?: string) => {
    let target = image instanceof vscode.Uri ? image : undefined;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, title: 'Compare two models on… (an image)', openLabel: 'Compare on this image' });
      target = picked?.[0];
    }
    if (!target) return;
    const a = typeof modelA === 'string' ? modelA : await services.models.resolveFor(target);
    if (!a) return;
    const b = await services.models.pick({ title: 'CAM Lens: Compare with Another Model (model B)', setActive: false });
    if (!b) return;
    panels.showImage(target.fsPath, a, b, typeof method === 'string' ? method : 'gradcam', typeof classLabel === 'string' ? classLabel : '');
  });
  const onFolder = vscode.commands.registerCommand('camLens.compareModelsOnFolder', async (uri?: vscode.Uri) => {
    let target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({
        canSelectFiles: false, canSelectFolders: true, canSelectMany: false, openLabel: 'Compare on this folder',
        title: 'Compare two models on… (a folder of <class>/<image> folders)', defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      });
      target = picked?.[0];
    }
    if (!target) return;
    if (target.scheme !== 'file' || !fs.existsSync(target.fsPath)) {
      void vscode.window.showErrorMessage(`CAM Lens: ${target.fsPath} is not a local folder or label file.`);
      return;
    }
    const a = services.models.configured(target) ?? (await services.models.pick({ title: 'CAM Lens: Compare Two Models (model A)', setActive: false }));
    if (!a) return;
    const b = await services.models.pick({ title: 'CAM Lens: Compare Two Models (model B)', setActive: false });
    if (!b) return;
    panels.showFolder(target.fsPath, a, b);
  });
  return vscode.Disposable.from(withModel, onFolder, vscode.window.registerWebviewPanelSerializer(COMPARE_VIEW_TYPE, panels));
}
