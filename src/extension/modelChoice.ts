/**
 * Which model explains an image. In order: the `camLens.model` setting, else the model last chosen in this
 * workspace, else a `model.json` next to or above the image (up to the workspace folder), else a quick
 * pick. The bundled demo model is always offered, once (panels/modelNames.ts). A status-bar item shows the
 * active model and backend and opens the picker. Models are named by modelDisplayName everywhere.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { modelDisplayName, modelPickEntries } from './panels/modelNames';

/**
 * The model files CAM Lens opens: TensorFlow.js model.json, ONNX, Keras 3 archives and Keras HDF5. The
 * Explorer menus (package.json) and the file dialogs list the same.
 */
export const MODEL_FILE_GLOB = '**/{model.json,*-model.json,*_model.json,*.onnx,*.keras,*.h5,*.hdf5}';
export const MODEL_FILE_FILTERS = { 'Models (model.json, ONNX, Keras)': ['json', 'onnx', 'keras', 'h5', 'hdf5'] };

const LAST_MODEL_KEY = 'camLens.lastModel';

export class ModelChoice implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('camLens.model', vscode.StatusBarAlignment.Right, 100);
  private backend = '';
  private threads?: number;
  private readonly changed = new vscode.EventEmitter<{ previous?: string; current: string }>();
  /** Fires with the previous and the new active model when the user picks another model. */
  readonly onDidChange = this.changed.event;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.item.name = 'CAM Lens model';
    this.item.command = 'camLens.selectModel';
    this.update();
    this.item.show();
  }

  get demoModel(): string {
    return this.context.asAbsolutePath(path.join('models', 'demo', 'model.json'));
  }

  /** The model from settings or the last choice, without asking; undefined where neither is set. */
  configured(scope?: vscode.Uri): string | undefined {
    const setting = vscode.workspace.getConfiguration('camLens', scope).get<string>('model', '').trim();
    if (setting) {
      if (path.isAbsolute(setting)) return setting;
      const folder = (scope && vscode.workspace.getWorkspaceFolder(scope)) ?? vscode.workspace.workspaceFolders?.[0];
      return folder ? path.join(folder.uri.fsPath, setting) : path.resolve(setting);
    }
    const last = this.context.workspaceState.get<string>(LAST_MODEL_KEY);
    return last && fs.existsSync(last) ? last : undefined;
  }

  /** A model.json next to or above `image`, not above its workspace folder. */
  nearby(image: vscode.Uri): string | undefined {
    const stop = vscode.workspace.getWorkspaceFolder(image)?.uri.fsPath;
    let dir = path.dirname(image.fsPath);
    for (let i = 0; i < 32; i++) {
      const candidate = path.join(dir, 'model.json');
      if (fs.existsSync(candidate)) return candidate;
      if (!stop || dir === stop || path.dirname(dir) === dir) break;
      dir = path.dirname(dir);
    }
    return undefined;
  }

  async resolveFor(image: vscode.Uri): Promise<string | undefined> {
    return this.configured(image) ?? this.nearby(image) ?? this.pick();
  }

  /**
   * The quick pick: workspace model.json files, the bundled demo model, Browse… `setActive: false` (the compare
   * panel's second model) only returns the choice, leaving the active model as it is.
   */
  async pick(opts: { title?: string; setActive?: boolean } = {}): Promise<string | undefined> {
    type Item = vscode.QuickPickItem & { modelPath?: string; browse?: boolean };
    const found = await vscode.workspace.findFiles(MODEL_FILE_GLOB, '**/node_modules/**', 200);
    const items: Item[] = modelPickEntries(
      found.map((u) => u.fsPath).sort(),
      fs.existsSync(this.demoModel) ? this.demoModel : undefined,
      this.configured(),
      (p) => vscode.workspace.asRelativePath(p),
    );
    items.push({ label: '$(folder-opened) Browse…', browse: true });
    const choice = await vscode.window.showQuickPick(items, { title: opts.title ?? 'CAM Lens: Select Model', placeHolder: 'A model to explain images with: model.json, .onnx, .keras or .h5' });
    if (!choice) return undefined;
    let chosen = choice.modelPath;
    if (choice.browse) {
      const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: MODEL_FILE_FILTERS, title: 'Choose a model' });
      chosen = uris?.[0]?.fsPath;
    }
    if (chosen && opts.setActive !== false) await this.setActive(chosen);
    return chosen;
  }

  /**
   * The user chose a model (the picker, an inspector's "Use this model"). Where a `camLens.model` setting is in
   * effect it would win over the last choice, so that the choice took effect nowhere: the setting is updated too,
   * in the workspace (a path relative to the workspace folder where the model lies inside it).
   */
  async setActive(modelPath: string): Promise<void> {
    const previous = this.configured();
    await this.context.workspaceState.update(LAST_MODEL_KEY, modelPath);
    const config = vscode.workspace.getConfiguration('camLens');
    if (config.get<string>('model', '').trim()) {
      const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(modelPath)) ?? vscode.workspace.workspaceFolders?.[0];
      const rel = folder ? path.relative(folder.uri.fsPath, modelPath) : '';
      const value = folder && rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : modelPath;
      const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
      await config.update('model', value, target);
    }
    this.update();
    this.changed.fire({ previous, current: modelPath });
  }

  /** The backend the engine runs on, and its thread count where the caller knows it (shown in the tooltip). */
  setBackend(name: string, threads?: number): void {
    this.backend = name;
    this.threads = threads;
    this.update();
  }

  update(): void {
    const active = this.configured();
    const name = active ? modelDisplayName(active) : 'no model';
    this.item.text = `$(flame) ${name}${this.backend ? ` · ${this.backend}` : ''}`;
    this.item.tooltip = `CAM Lens model: ${active ?? 'none chosen yet'}${this.backend ? `\nBackend: ${this.backend}${this.threads ? `, ${this.threads} thread${this.threads === 1 ? '' : 's'}` : ''}` : ''}\nClick to choose another model`;
  }

  dispose(): void {
    this.item.dispose();
    this.changed.dispose();
  }
}
