/** "Show Class Activation Map": Explorer context, editor title of an open image, or the palette with a picker. */
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { ExplainPanels } from '../panels/explainPanel';
import { IMAGE_EXTENSIONS } from '../engine/scan/dataset';

const IMAGE_EXT = new Set(IMAGE_EXTENSIONS);

/**
 * The Explorer offers the command on files without an extension too, since scanners write DICOM files so
 * (IM000001): such a file is opened only when it is DICOM ("DICM" at byte 128); others get a message, no panel.
 */
function extensionlessNonDicom(file: string): boolean {
  if (path.extname(file) !== '') return false;
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    return !(fs.readSync(fd, b, 0, 4, 128) === 4 && b.toString('latin1') === 'DICM');
  } catch {
    return false; // unreadable: the panel says why
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function activeImage(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  const uri = input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText ? input.uri : undefined;
  return uri && IMAGE_EXT.has(path.extname(uri.fsPath).toLowerCase()) ? uri : undefined;
}

export function registerShowCam(panels: ExplainPanels): vscode.Disposable {
  // `options` (from the triage and strategies panels): the model and the output of a model with several to explain the
  // image with, and the class to explain first.
  return vscode.commands.registerCommand('camLens.showCam', async (uri?: vscode.Uri, options?: { model?: string; output?: string; classIndex?: number }) => {
    let target = uri instanceof vscode.Uri ? uri : activeImage();
    if (!target) {
      const picked = await vscode.window.showOpenDialog({
        canSelectMany: false,
        title: 'Show Class Activation Map for…',
        filters: { Images: [...IMAGE_EXT].map((e) => e.slice(1)) },
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      });
      target = picked?.[0];
    }
    if (!target) return;
    if (target.scheme !== 'file') {
      void vscode.window.showErrorMessage(`CAM Lens reads images from disk; ${target.toString()} is not a local file.`);
      return;
    }
    if (extensionlessNonDicom(target.fsPath)) {
      void vscode.window.showInformationMessage(`${path.basename(target.fsPath)} has no extension and is not a DICOM file (no "DICM" marker at byte 128): CAM Lens cannot explain it.`);
      return;
    }
    const ci = options?.classIndex;
    const classIndex = typeof ci === 'number' && Number.isInteger(ci) && ci >= 0 ? ci : undefined;
    await panels.show(target, typeof options?.model === 'string' ? options.model : undefined, typeof options?.output === 'string' ? options.output : undefined, classIndex);
  });
}
