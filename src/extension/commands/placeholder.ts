/**
 * First cut of the three commands: the engine runs in the extension host and a plain panel shows the
 * overlay and predictions. The full panels (worker, pickers, inspector) replace this.
 */
import * as path from 'path';
import * as vscode from 'vscode';
import { initBackend, type BackendChoice } from '../engine/backend';
import { loadModel } from '../engine/model';
import { describeModel, openImage } from '../engine/pipeline';
import { renderOverlayPng } from '../engine/overlay';
import { toErrorInfo } from '../engine/errors';

function nonce(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 32; i++) s += chars[Math.floor(Math.random() * chars.length)];
  return s;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function page(webview: vscode.Webview, title: string, body: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${webview.cspSource} data:; style-src 'nonce-${nonce()}';">
<title>${escapeHtml(title)}</title></head><body><h1 id="title">${escapeHtml(title)}</h1>${body}</body></html>`;
}

async function resolveModel(context: vscode.ExtensionContext, near: vscode.Uri): Promise<string | undefined> {
  const configured = vscode.workspace.getConfiguration('camLens', near).get<string>('model');
  if (configured) {
    const folder = vscode.workspace.getWorkspaceFolder(near);
    return path.isAbsolute(configured) || !folder ? configured : path.join(folder.uri.fsPath, configured);
  }
  const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'TensorFlow.js model': ['json'] }, title: 'Choose a model.json' });
  return picked?.[0]?.fsPath ?? path.join(context.extensionPath, 'models', 'demo', 'model.json');
}

export function registerPlaceholderCommands(context: vscode.ExtensionContext): void {
  const backend = () => vscode.workspace.getConfiguration('camLens').get<BackendChoice>('backend', 'auto');
  context.subscriptions.push(
    vscode.commands.registerCommand('camLens.showCam', async (uri?: vscode.Uri) => {
      const target = uri ?? (await vscode.window.showOpenDialog({ canSelectMany: false, filters: { Images: ['png', 'jpg', 'jpeg', 'webp', 'gif', 'bmp', 'tif', 'tiff'] } }))?.[0];
      if (!target) return;
      const modelPath = await resolveModel(context, target);
      if (!modelPath) return;
      const panel = vscode.window.createWebviewPanel('camLens.explain', `CAM: ${path.basename(target.fsPath)}`, vscode.ViewColumn.Beside, { enableScripts: false, localResourceRoots: [] });
      try {
        const info = await initBackend(backend());
        const model = await loadModel(modelPath);
        const opened = await openImage(model, target.fsPath);
        try {
          const preds = await opened.session.predictions(5);
          const r = await opened.session.explain({ method: vscode.workspace.getConfiguration('camLens').get('defaultMethod', 'gradcam') });
          const png = await renderOverlayPng(opened.image, r.heatmap, { colormap: 'turbo', opacity: 0.5 });
          const list = preds.map((p) => `<li>${escapeHtml(p.label)}: ${(p.probability * 100).toFixed(1)}%</li>`).join('');
          panel.webview.html = page(panel.webview, `Class Activation Map for ${path.basename(target.fsPath)}`,
            `<p id="status">${escapeHtml(r.method)} for ${escapeHtml(r.target.label)} at ${escapeHtml(r.layer)} (${escapeHtml(model.name)}, ${info.name})</p>` +
            `<img id="overlay" alt="overlay" src="data:image/png;base64,${png.toString('base64')}"><ol id="predictions">${list}</ol>`);
        } finally {
          opened.session.dispose();
          model.dispose();
        }
      } catch (e) {
        const err = toErrorInfo(e);
        panel.webview.html = page(panel.webview, 'CAM Lens could not explain this image', `<p id="error">${escapeHtml(err.message)}</p>${err.hint ? `<p>${escapeHtml(err.hint)}</p>` : ''}`);
      }
    }),
    vscode.commands.registerCommand('camLens.inspectModel', async (uri?: vscode.Uri) => {
      const target = uri ?? (await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'TensorFlow.js model': ['json'] } }))?.[0];
      if (!target) return;
      const panel = vscode.window.createWebviewPanel('camLens.inspect', `Layers: ${path.basename(path.dirname(target.fsPath))}`, vscode.ViewColumn.Beside, { enableScripts: false, localResourceRoots: [] });
      try {
        await initBackend(backend());
        const model = await loadModel(target.fsPath);
        try {
          const s = describeModel(model);
          const rows = s.layers.map((l) => `<tr><td>${escapeHtml(l.name)}</td><td>${escapeHtml(l.className)}</td><td>[${l.outputShape.map((d) => d ?? 'N').join(', ')}]</td><td>${l.params}</td><td>${escapeHtml(l.inbound.join(', '))}</td></tr>`).join('');
          panel.webview.html = page(panel.webview, `${s.name}: ${s.layers.length} layers`, `<table id="layers"><tr><th>Name</th><th>Type</th><th>Output shape</th><th>Parameters</th><th>Inbound</th></tr>${rows}</table>`);
        } finally {
          model.dispose();
        }
      } catch (e) {
        panel.webview.html = page(panel.webview, 'CAM Lens could not read this model', `<p id="error">${escapeHtml(toErrorInfo(e).message)}</p>`);
      }
    }),
    vscode.commands.registerCommand('camLens.findMislabeled', async () => {
      void vscode.window.showInformationMessage('CAM Lens: finding mislabeled samples arrives with the scan engine.');
    }),
    vscode.commands.registerCommand('camLens.selectModel', async () => {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'TensorFlow.js model': ['json'] }, title: 'Choose a model.json' });
      if (picked?.[0]) await vscode.workspace.getConfiguration('camLens').update('model', picked[0].fsPath, vscode.ConfigurationTarget.Workspace);
    }),
  );
}
