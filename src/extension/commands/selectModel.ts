/** "CAM Lens: Select Model…": the quick pick of workspace models, the bundled demo model and Browse…. */
import * as vscode from 'vscode';
import type { ModelChoice } from '../modelChoice';

export function registerSelectModel(models: ModelChoice): vscode.Disposable {
  return vscode.commands.registerCommand('camLens.selectModel', async () => {
    await models.pick();
  });
}
