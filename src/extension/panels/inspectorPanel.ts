/**
 * "Inspect Model Layers": the layer table of a model.json and, for an image the user chooses, the feature
 * maps of any layer as a channel grid. One panel per model, revealed again if already open.
 */
import * as path from 'path';
import * as vscode from 'vscode';
import { IMAGE_EXTENSIONS } from '../engine/scan/dataset';
import { isCancellation, type EngineClient } from '../engineClient';
import type { ModelChoice } from '../modelChoice';
import type { Log } from '../log';
import { isInspectorWebviewMessage, type InspectorHostMessage, type InspectorWebviewMessage } from '../../shared/protocol';
import { panelOptions, renderPanel } from './webviewAssets';
import { toPayload } from './explainPanel';
import { modelDisplayName } from './modelNames';

export const INSPECTOR_VIEW_TYPE = 'camLens.inspect';

/** Every image the engine decodes (engine/scan/dataset.ts IMAGE_EXTENSIONS), DICOM included; 'All files' for extensionless DICOM. */
const IMAGE_FILTERS = { Images: IMAGE_EXTENSIONS.map((e) => e.slice(1)), 'All files': ['*'] };

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

export class InspectorPanels {
  private readonly open = new Map<string, InspectorPanel>();

  constructor(private readonly s: Services) {}

  show(model: vscode.Uri): void {
    const existing = this.open.get(model.fsPath);
    if (existing) {
      existing.panel.reveal(existing.panel.viewColumn);
      return;
    }
    const roots = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri);
    const panel = vscode.window.createWebviewPanel(INSPECTOR_VIEW_TYPE, `Layers: ${modelDisplayName(model.fsPath)}`, vscode.ViewColumn.Beside, panelOptions(this.s.context, roots));
    const p = new InspectorPanel(this.s, panel, model.fsPath);
    this.open.set(model.fsPath, p);
    panel.onDidDispose(() => {
      this.open.delete(model.fsPath);
      p.dispose();
    });
  }
}

class InspectorPanel {
  private image?: vscode.Uri;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly key = `inspect:${Math.random().toString(36).slice(2)}`;

  /** Lets go of the model this panel shows (the engine frees it a while after its last panel closed). */
  private readonly releaseModel: () => void;

  constructor(private readonly s: Services, readonly panel: vscode.WebviewPanel, readonly modelPath: string) {
    this.releaseModel = s.engine.holdModel(modelPath);
    panel.iconPath = vscode.Uri.joinPath(s.context.extensionUri, 'media', 'icon.svg');
    panel.webview.html = renderPanel(s.context, panel.webview, 'inspector', `Layers of ${modelDisplayName(modelPath)}`);
    this.disposables.push(panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)));
  }

  private post(m: InspectorHostMessage): void {
    void this.panel.webview.postMessage(m);
  }

  private async onMessage(raw: unknown): Promise<void> {
    if (!isInspectorWebviewMessage(raw)) {
      this.s.log.line(`inspector: ignored an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const m: InspectorWebviewMessage = raw;
    switch (m.type) {
      case 'panel/ready':
        await this.init();
        return;
      case 'image/choose':
        await this.chooseImage(m.requestId);
        return;
      case 'features/compute':
        await this.features(m);
        return;
      case 'model/use':
        await this.s.models.setActive(this.modelPath);
        this.post({ type: 'model/didUse', requestId: m.requestId, path: this.modelPath });
        void vscode.window.setStatusBarMessage(`CAM Lens: now explaining images with ${modelDisplayName(this.modelPath)}`, 4000);
        return;
      default: {
        const never: never = m;
        void never;
      }
    }
  }

  private async init(): Promise<void> {
    try {
      const d = await this.s.engine.describeModel({ path: this.modelPath }, { supersedeKey: `${this.key}:init` });
      this.s.models.setBackend(d.backend.name, d.backend.threads);
      this.post({ type: 'panel/didInit', model: d.info, layers: d.layers, totalParams: d.totalParams });
    } catch (e) {
      if (isCancellation(e)) return;
      this.s.log.error(`inspect ${this.modelPath}`, e);
      this.post({ type: 'panel/didFail', error: toPayload(e) });
    }
  }

  private async chooseImage(requestId: number): Promise<void> {
    try {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: IMAGE_FILTERS, title: 'Choose an image to see its feature maps', defaultUri: this.image ?? vscode.workspace.workspaceFolders?.[0]?.uri });
      if (!picked?.[0]) {
        this.post({ type: 'request/didFail', requestId, error: { name: 'Cancelled', message: 'no image was chosen', code: 'CANCELLED' } });
        return;
      }
      await this.useImage(picked[0], requestId);
    } catch (e) {
      this.s.log.error('choose image', e);
      this.post({ type: 'request/didFail', requestId, error: toPayload(e) });
    }
  }

  private async useImage(image: vscode.Uri, requestId: number): Promise<void> {
    const pred = await this.s.engine.predict({ model: { path: this.modelPath }, image: { path: image.fsPath }, topK: 10 });
    this.image = image;
    // Images inside the workspace load through the webview; others (outside localResourceRoots) as a PNG.
    let imageUri = this.panel.webview.asWebviewUri(image).toString();
    if (!vscode.workspace.getWorkspaceFolder(image)) {
      const png = await this.s.engine.renderOverlay({ image: { path: image.fsPath }, heatmap: { width: 1, height: 1, values: new Float32Array(1) }, colormap: 'gray', opacity: 0 });
      imageUri = `data:image/png;base64,${Buffer.from(png.png).toString('base64')}`;
    }
    this.post({ type: 'image/didChoose', requestId, imageName: path.basename(image.fsPath), imageUri, predictions: pred.predictions });
  }

  private async features(m: Extract<InspectorWebviewMessage, { type: 'features/compute' }>): Promise<void> {
    try {
      if (!this.image) throw Object.assign(new Error('choose an image first'), { code: 'BAD_ARGUMENT', hint: 'use "Choose image…"' });
      const r = await this.s.engine.featureMaps({ model: { path: this.modelPath }, image: { path: this.image.fsPath }, layer: m.layer, classIndex: m.classIndex }, { supersedeKey: `${this.key}:features` });
      this.post({ type: 'features/didCompute', requestId: m.requestId, ...r });
    } catch (e) {
      if (!isCancellation(e)) this.s.log.error(`feature maps of ${m.layer}`, e);
      this.post({ type: 'request/didFail', requestId: m.requestId, error: toPayload(e) });
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.releaseModel();
  }
}
