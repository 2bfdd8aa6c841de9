/** "Find Likely Mislabeled Samples": replaced by the triage panel. */
import * as vscode from 'vscode';

export function registerFindMislabeled(_services: unknown): vscode.Disposable {
  return vscode.commands.registerCommand('camLens.findMislabeled', async () => {
    void vscode.window.showInformationMessage('CAM Lens: the mislabeled-sample scan is not available in this build yet.');
  });
}
