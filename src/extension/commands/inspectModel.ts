/** "Inspect Model Layers": Explorer context on a model file (model.json, ONNX, Keras), or the palette with a picker. */
import * as vscode from 'vscode';
import type { InspectorPanels } from '../panels/inspectorPanel';
import { MODEL_FILE_FILTERS } from '../modelChoice';

export function registerInspectModel(panels: InspectorPanels): vscode.Disposable {
  return vscode.commands.registerCommand('camLens.inspectModel', async (uri?: vscode.Uri) => {
    let target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: MODEL_FILE_FILTERS, title: 'Inspect the layers of…' });
      target = picked?.[0];
    }
    if (target) panels.show(target);
  });
}
