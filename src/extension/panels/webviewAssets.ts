/** Panel HTML and resource roots shared by the panels: bundles from dist/, styles from media/. */
import * as vscode from 'vscode';
import { buildPanelHtml, createNonce, type PanelKind } from './html';

export function panelOptions(context: vscode.ExtensionContext, extraRoots: vscode.Uri[] = []): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    retainContextWhenHidden: false,
    localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist'), vscode.Uri.joinPath(context.extensionUri, 'media'), ...extraRoots],
  };
}

export function renderPanel(context: vscode.ExtensionContext, webview: vscode.Webview, kind: PanelKind, title: string): string {
  const asUri = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(context.extensionUri, ...p)).toString();
  return buildPanelHtml({
    cspSource: webview.cspSource,
    nonce: createNonce(),
    scriptUri: asUri('dist', `webview-${kind}.js`),
    styleUris: [asUri('media', 'common.css'), asUri('media', `${kind}.css`)],
    title,
    kind,
  });
}
