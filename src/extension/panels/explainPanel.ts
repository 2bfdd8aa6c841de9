/**
 * The "Show Class Activation Map" panel: one per image (revealed again when already open), restored after a
 * reload by the serializer from the webview's persisted ExplainViewState. All compute goes to the engine
 * worker; the panel routes validated webview messages and answers every request exactly once.
 */
import * as path from 'path';
import * as vscode from 'vscode';
import type { EngineClient } from '../engineClient';
import { isCancellation } from '../engineClient';
import type { CamResult } from '../workerProtocol';
import type { ModelChoice } from '../modelChoice';
import type { Log } from '../log';
import {
  isExplainViewState,
  isExplainWebviewMessage,
  type ClassPrediction,
  type ErrorPayload,
  type ExplainHostMessage,
  type ExplainViewState,
  type ExplainWebviewMessage,
  type ImageDescription,
  type MethodInfo,
} from '../../shared/protocol';
import { appliedAsChoice, channelNote, dicomJson, type DicomSelection } from '../../shared/dicom';
import { columnForNewPanel } from './panelColumns';
import { panelOptions, renderPanel } from './webviewAssets';

export const EXPLAIN_VIEW_TYPE = 'camLens.explain';

/** Formats Chromium shows directly; others (tiff) get a PNG rendering from the engine. */
const BROWSER_FORMATS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp']);

/** topK for "every class": the engine sorts all of them and returns as many as there are. */
const ALL_CLASSES = 1_000_000;

/**
 * The methods as the panel offers them, with the Score-CAM-style budget and batch defaults taken from the
 * settings (camLens.scoreCam.channels, camLens.scoreCam.batchSize): the Options area shows what a map will use,
 * and only values the user changes there are sent, so the settings apply to everything else.
 */
function withSettingDefaults(methods: MethodInfo[]): MethodInfo[] {
  const fromSettings: Record<string, number | undefined> = channelBudgetSettings();
  return methods.map((m) => !m.params || !takesChannelBudget(m) ? m : {
    ...m,
    params: m.params.map((p) => {
      const v = fromSettings[p.id];
      if (p.kind !== 'number' || typeof v !== 'number' || !Number.isFinite(v)) return p;
      if ((p.min !== undefined && v < p.min) || (p.max !== undefined && v > p.max)) return p;
      return { ...p, default: v };
    }),
  });
}

/** A method that scores channels within a budget (Score-CAM, Ablation-CAM): it has a `channels` option. */
function takesChannelBudget(m: MethodInfo | undefined): boolean {
  // An older engine lists no params: Score-CAM is the one that took the settings then.
  return m?.params ? m.params.some((p) => p.id === 'channels') : m?.id === 'scorecam';
}

function channelBudgetSettings(): { channels?: number; batchSize?: number } {
  const cfg = vscode.workspace.getConfiguration('camLens');
  return { channels: cfg.get<number>('scoreCam.channels'), batchSize: cfg.get<number>('scoreCam.batchSize') };
}

export function toPayload(e: unknown): ErrorPayload {
  const err = e as { name?: string; message?: string; code?: string; hint?: string; toPayload?: () => ErrorPayload };
  if (typeof err?.toPayload === 'function') return err.toPayload();
  return { name: err?.name ?? 'Error', message: err?.message ?? String(e), code: err?.code, hint: err?.hint };
}

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

export class ExplainPanels implements vscode.WebviewPanelSerializer<unknown> {
  private readonly open = new Map<string, ExplainPanel>();
  /** Counts panel activations: which explain panel was used last (where a new one goes). */
  private activity = 0;

  constructor(private readonly s: Services) {}

  /**
   * `output`: for a model with several outputs, the one to explain (with `modelPath`; the triage panel passes both).
   * `classIndex`: the class to explain first (the strategies panel: the class the image was analysed for).
   */
  async show(image: vscode.Uri, modelPath?: string, output?: string, classIndex?: number): Promise<void> {
    const key = image.fsPath;
    const existing = this.open.get(key);
    if (existing) {
      // In its own column: "beside" the active editor, which is often this very panel, would open a new column.
      existing.panel.reveal(existing.panel.viewColumn);
      if (modelPath && modelPath !== existing.modelPath) existing.useModel(modelPath, output);
      else if (output !== undefined) existing.useOutputOf(output);
      return;
    }
    const model = modelPath ?? (await this.s.models.resolveFor(image));
    if (!model) return; // the user closed the picker
    // Another image: a tab in the column of the explain panel used last, if one is open (panelColumns.ts).
    const column = columnForNewPanel([...this.open.values()].map((p) => ({ column: p.panel.viewColumn, lastActive: p.lastActive })));
    const panel = vscode.window.createWebviewPanel(EXPLAIN_VIEW_TYPE, `CAM: ${path.basename(image.fsPath)}`, { viewColumn: column ?? vscode.ViewColumn.Beside, preserveFocus: false },
      panelOptions(this.s.context, [vscode.Uri.file(path.dirname(image.fsPath))]));
    this.attach(panel, image, model, undefined, output);
    const opened = this.open.get(image.fsPath);
    if (classIndex !== undefined) opened?.preferClass(classIndex);
    opened?.startEarly();
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    if (!isExplainViewState(state)) {
      panel.dispose();
      return;
    }
    const image = vscode.Uri.file(state.imagePath);
    const model = state.modelPath ?? this.s.models.configured(image) ?? this.s.models.nearby(image) ?? this.s.models.demoModel;
    panel.webview.options = panelOptions(this.s.context, [vscode.Uri.file(path.dirname(image.fsPath))]);
    this.attach(panel, image, model, state);
  }

  private attach(panel: vscode.WebviewPanel, image: vscode.Uri, modelPath: string, state?: ExplainViewState, output?: string): void {
    const p = new ExplainPanel(this.s, panel, image, modelPath, state);
    if (output !== undefined) p.useOutputOf(output);
    p.lastActive = ++this.activity;
    this.open.set(image.fsPath, p);
    panel.onDidChangeViewState((e) => {
      if (e.webviewPanel.active) p.lastActive = ++this.activity;
    });
    panel.onDidDispose(() => {
      this.open.delete(image.fsPath);
      p.dispose();
    });
  }

  /** Re-initialises every open panel (backend or model setting changed). */
  refreshAll(): void {
    for (const p of this.open.values()) p.reinit();
  }

  /** The active model changed: the panels that showed the previous one show the new one; the others keep theirs. */
  followModel(previous: string | undefined, current: string): void {
    for (const p of this.open.values()) {
      if (!previous || path.resolve(p.modelPath) === path.resolve(previous)) p.useModel(current);
    }
  }

  get count(): number {
    return this.open.size;
  }
}

class ExplainPanel {
  private state: ExplainViewState;
  private last?: CamResult;
  /** The methods as the panel offers them (panel/didInit). */
  private methods: MethodInfo[] = [];
  /** The options the last map was asked with (the panel's Options area), for the JSON export. */
  private lastOptions?: Record<string, unknown>;
  /** The `cam/compute` running now, so that `cam/cancel` can stop it. */
  private camRun?: { requestId: number; abort: AbortController };
  private lastPredictions?: ExplainHostMessage & { type: 'predictions/didCompute' };
  /** The output the model explains (its name), where it has several; for the JSON export. */
  private outputName?: string;
  /** The image as the last prediction saw it: channels, depth, DICOM path (frames, the window applied). */
  private imageInfo?: ImageDescription;
  /** The model's input channels, for the channels note of the JSON export. */
  private modelChannels?: number;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly key = `explain:${Math.random().toString(36).slice(2)}`;
  private ready = false;
  /** When this panel was last active (ExplainPanels' activation counter). */
  lastActive = 0;
  /** Lets go of the model this panel shows (the engine frees it a while after its last panel closed). */
  private releaseModel: () => void;

  constructor(private readonly s: Services, readonly panel: vscode.WebviewPanel, readonly image: vscode.Uri, public modelPath: string, state?: ExplainViewState) {
    this.releaseModel = s.engine.holdModel(modelPath);
    const cfg = vscode.workspace.getConfiguration('camLens', image);
    this.state = state ?? {
      version: 1,
      imagePath: image.fsPath,
      modelPath,
      method: cfg.get('defaultMethod', 'gradcam'),
      opacity: cfg.get('opacity', 0.5),
      colormap: cfg.get('colormap', 'turbo'),
      overlay: true,
    };
    this.state.modelPath = modelPath;
    panel.iconPath = vscode.Uri.joinPath(s.context.extensionUri, 'media', 'icon.svg');
    panel.webview.html = renderPanel(s.context, panel.webview, 'explain', `Class Activation Map for ${path.basename(image.fsPath)}`);
    this.disposables.push(panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)));
  }

  private post(m: ExplainHostMessage): void {
    void this.panel.webview.postMessage(m);
  }

  private get modelRef() {
    return this.refWith(this.state.output);
  }

  /** The model with an output chosen (a model of its own in the worker's cache), or its default output. */
  private refWith(output: string | undefined) {
    return output === undefined ? { path: this.modelPath } : { path: this.modelPath, overrides: { output } };
  }

  private imageRef(preprocess = this.state.preprocess, dicom: DicomSelection | undefined = this.state.dicom) {
    return { path: this.image.fsPath, preprocess, maxPixels: vscode.workspace.getConfiguration('camLens').get<number>('maxImagePixels'), ...(dicom ? { dicom } : {}) };
  }

  /** The image as the model saw it: for DICOM, its frame and the window that was applied (the model's default included). */
  private shownImageRef() {
    const d = this.imageInfo?.dicom;
    return this.imageRef(this.state.preprocess, d ? { frame: d.frame, ...(d.window ? { window: appliedAsChoice(d.window) } : {}) } : this.state.dicom);
  }
  /**
   * Starts the model's load and the image's forward pass while the webview boots (0.3-1 s), so that its
   * panel/ready requests (describe, predict) find both done. For a panel the user just opened, not for panels
   * restored at start-up. A failure is reported by those requests.
   */
  /** A new panel's first class (before its webview is ready; the model's class count is checked at init). */
  preferClass(classIndex: number): void {
    this.state = { ...this.state, classIndex };
  }

  startEarly(): void {
    this.s.engine.predict({ model: this.modelRef, image: this.imageRef(), topK: 1 }).catch(() => undefined);
  }


  private async onMessage(raw: unknown): Promise<void> {
    if (!isExplainWebviewMessage(raw)) {
      this.s.log.line(`explain panel: ignored an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const m: ExplainWebviewMessage = raw;
    switch (m.type) {
      case 'panel/ready':
        this.ready = true;
        await this.init();
        return;
      case 'cam/compute':
        await this.compute(m);
        return;
      case 'cam/cancel':
        if (this.camRun?.requestId === m.requestId) this.camRun.abort.abort();
        return;
      case 'export/png':
        await this.answer(m.requestId, () => this.exportPng(m.colormap, m.opacity));
        return;
      case 'export/json':
        await this.answer(m.requestId, () => this.exportJson());
        return;
      case 'model/select': {
        const picked = await this.s.models.pick();
        if (picked) this.useModel(picked);
        else this.post({ type: 'request/didFail', requestId: m.requestId, error: { name: 'Cancelled', message: 'no model was chosen', code: 'CANCELLED' } });
        return;
      }
      case 'output/select':
        await this.useOutput(m.requestId, m.output);
        return;
      case 'compare/open':
        // A class index is model A's (the compare engine finds it in B by its label); absent: A's top-1.
        await vscode.commands.executeCommand('camLens.compareWithModel', this.image, this.modelPath, this.state.method,
          this.state.classIndex === undefined ? '' : String(this.state.classIndex));
        return;
      case 'dicom/select':
        await this.useDicom(m.requestId, m.selection);
        return;
      case 'state/didChange':
        // The output and the DICOM frame/window are the host's to change (output/select, dicom/select decode and
        // reload); a state message does not move them.
        this.state = { ...m.state, imagePath: this.image.fsPath, modelPath: this.modelPath, output: this.state.output, dicom: this.state.dicom };
        return;
      default: {
        const never: never = m;
        void never;
      }
    }
  }

  /** Runs an export request and answers it exactly once. */
  private async answer(requestId: number, f: () => Promise<string | undefined>): Promise<void> {
    try {
      const saved = await f();
      if (saved) this.post({ type: 'export/didSave', requestId, path: saved });
      else this.post({ type: 'request/didFail', requestId, error: { name: 'Cancelled', message: 'the export was cancelled', code: 'CANCELLED' } });
    } catch (e) {
      this.s.log.error('export', e);
      this.post({ type: 'request/didFail', requestId, error: toPayload(e) });
    }
  }

  useModel(modelPath: string, output?: string): void {
    const release = this.releaseModel;
    this.releaseModel = this.s.engine.holdModel(modelPath);
    release();
    this.modelPath = modelPath;
    this.state = { ...this.state, modelPath, layer: undefined, classIndex: undefined, preprocess: undefined, output };
    this.reinit();
  }

  /** Shows `output` of the current model (from another panel); an unknown one falls back to the default in init. */
  useOutputOf(output: string): void {
    if (output === this.state.output) return;
    this.state = { ...this.state, output, layer: undefined, classIndex: undefined };
    this.reinit();
  }

  /**
   * Another output of the same model: its classes and layers differ, so class and layer start afresh. The model
   * is loaded with that output first; where that fails the panel keeps the output it shows and the request fails.
   */
  private async useOutput(requestId: number, output: string): Promise<void> {
    try {
      await this.s.engine.describeModel(this.refWith(output), { supersedeKey: `${this.key}:init` });
    } catch (e) {
      if (!isCancellation(e)) this.s.log.error(`output ${output} of ${this.modelPath}`, e);
      this.post({ type: 'request/didFail', requestId, error: toPayload(e) });
      return;
    }
    this.state = { ...this.state, output, layer: undefined, classIndex: undefined };
    this.reinit();
  }

  /**
   * Another frame or window of a DICOM image: tried first (a frame or window the file lacks fails here, and the
   * panel keeps what it shows), then the panel starts afresh on the image as the model now sees it.
   */
  private async useDicom(requestId: number, selection: DicomSelection): Promise<void> {
    const d = this.imageInfo?.dicom;
    const fail = (message: string) => this.post({ type: 'request/didFail', requestId, error: { name: 'CamLensError', message, code: 'BAD_ARGUMENT' } });
    if (!d) return fail(`${path.basename(this.image.fsPath)} is not a DICOM image: it has no frames or windows to choose`);
    if (selection.frame !== undefined && selection.frame >= d.frames) return fail(`${path.basename(this.image.fsPath)} has ${d.frames} frame${d.frames === 1 ? '' : 's'}; there is no frame ${selection.frame}`);
    try {
      await this.s.engine.predict({ model: this.modelRef, image: this.imageRef(this.state.preprocess, selection), topK: 1 }, { supersedeKey: `${this.key}:predict` });
    } catch (e) {
      if (!isCancellation(e)) this.s.log.error(`DICOM frame/window of ${this.image.fsPath}`, e);
      this.post({ type: 'request/didFail', requestId, error: toPayload(e) });
      return;
    }
    this.state = { ...this.state, dicom: selection };
    this.reinit();
  }

  reinit(): void {
    if (this.ready) void this.init();
  }

  private async init(): Promise<void> {
    try {
      let described;
      try {
        described = await this.s.engine.describeModel(this.modelRef, { supersedeKey: `${this.key}:init` });
      } catch (e) {
        // A restored state may name an output the model no longer has: fall back to the model's default output.
        if ((e as { code?: string })?.code !== 'UNKNOWN_OUTPUT' || this.state.output === undefined) throw e;
        this.s.log.line(`explain ${this.image.fsPath}: ${(e as Error).message}; using the model's default output`);
        this.state = { ...this.state, output: undefined, layer: undefined, classIndex: undefined };
        described = await this.s.engine.describeModel(this.modelRef, { supersedeKey: `${this.key}:init` });
      }
      this.s.models.setBackend(described.backend.name, described.backend.threads);
      this.outputName = (described.info.outputs?.length ?? 1) > 1 ? described.info.output : undefined;
      const pred = await this.s.engine.predict({ model: this.modelRef, image: this.imageRef(), topK: ALL_CLASSES }, { supersedeKey: `${this.key}:predict` });
      this.imageInfo = pred.image;
      this.modelChannels = described.info.inputSize[2];
      const ext = path.extname(this.image.fsPath).toLowerCase();
      let imageUri = this.panel.webview.asWebviewUri(this.image).toString();
      // DICOM (whatever its name) and formats Chromium cannot show: the engine renders the image as the model saw it.
      if (!BROWSER_FORMATS.has(ext) || pred.image?.dicom) {
        const png = await this.s.engine.renderOverlay({ image: this.shownImageRef(), heatmap: { width: 1, height: 1, values: new Float32Array(1) }, colormap: 'gray', opacity: 0 });
        imageUri = `data:image/png;base64,${Buffer.from(png.png).toString('base64')}`;
      }
      // Drop choices the new model does not have (after a model switch or a restore).
      if (this.state.layer && !described.info.spatialLayers.includes(this.state.layer)) this.state.layer = undefined;
      if (this.state.classIndex !== undefined && this.state.classIndex >= Math.max(described.info.labels.length, 1) && described.info.labels.length > 0) this.state.classIndex = undefined;
      this.post({
        type: 'panel/didInit',
        imageUri,
        imageName: path.basename(this.image.fsPath),
        imageSize: pred.imageSize,
        model: described.info,
        methods: (this.methods = withSettingDefaults(described.methods)),
        state: this.state,
        ...(pred.image ? { image: pred.image } : {}),
      });
      this.lastPredictions = this.predictionsMessage(pred.predictions);
      this.post(this.lastPredictions);
    } catch (e) {
      if (isCancellation(e)) return;
      this.s.log.error(`explain ${this.image.fsPath}`, e);
      this.post({ type: 'panel/didFail', error: toPayload(e), imageName: path.basename(this.image.fsPath) });
    }
  }

  /**
   * The top k (camLens.topK) of a prediction of every class, plus every class's probability by label index for
   * the class list ("why not class X?" needs the probability of X, not only of the top k).
   */
  private predictionsMessage(all: ClassPrediction[]): Extract<ExplainHostMessage, { type: 'predictions/didCompute' }> {
    const topK = Math.max(1, vscode.workspace.getConfiguration('camLens').get<number>('topK', 5));
    const probabilities = new Float32Array(all.reduce((n, p) => Math.max(n, p.index + 1), 0));
    for (const p of all) probabilities[p.index] = p.probability;
    return { type: 'predictions/didCompute', predictions: all.slice(0, topK), probabilities };
  }

  private async compute(m: Extract<ExplainWebviewMessage, { type: 'cam/compute' }>): Promise<void> {
    try {
      const preprocessChanged = m.preprocess !== this.state.preprocess;
      // A pixel method that reads no layer sends none: the layer chosen for CAM methods stays.
      this.state = { ...this.state, method: m.method, classIndex: m.classIndex, layer: m.layer ?? this.state.layer, layers: m.layers, preprocess: m.preprocess };
      if (preprocessChanged) {
        const pred = await this.s.engine.predict({ model: this.modelRef, image: this.imageRef(m.preprocess), topK: ALL_CLASSES }, { supersedeKey: `${this.key}:predict` });
        this.lastPredictions = this.predictionsMessage(pred.predictions);
        this.post(this.lastPredictions);
      }
      // camLens.scoreCam.channels and .batchSize: the channel budget (0 = every channel) and batch of the methods
      // that score channels (Score-CAM, Ablation-CAM), not the batch of a pixel method's noisy copies; the panel's
      // Options area (m.options: values the user changed there) wins; "Score all channels" asks for all once.
      const settings = takesChannelBudget(this.methods.find((x) => x.id === m.method)) ? channelBudgetSettings() : {};
      const abort = new AbortController();
      this.camRun = { requestId: m.requestId, abort };
      const r = await this.s.engine.computeCam(
        {
          model: this.modelRef, image: this.imageRef(m.preprocess), method: m.method, layer: m.layer, classIndex: m.classIndex,
          ...(m.layers && m.layers.length > 1 ? { layers: m.layers } : {}),
          options: { ...settings, ...m.options, ...(m.allChannels ? { channels: 'all' } : {}) },
        },
        { supersedeKey: `${this.key}:cam`, signal: abort.signal, onProgress: (done, total) => this.post({ type: 'cam/didProgress', requestId: m.requestId, done, total }) },
      );
      this.last = r;
      this.post({
        type: 'cam/didCompute',
        requestId: m.requestId,
        method: r.method,
        layer: r.layer,
        target: r.target,
        heatmap: r.heatmap,
        timingsMs: r.timingsMs,
        backend: r.backend,
        cached: r.cached,
        ...(r.details ? { details: r.details } : {}),
        ...(r.layers ? { layers: r.layers } : {}),
      });
      this.lastOptions = m.options;
    } catch (e) {
      if (!isCancellation(e)) this.s.log.error(`${m.method} on ${this.image.fsPath}`, e);
      this.post({ type: 'request/didFail', requestId: m.requestId, error: toPayload(e) });
    } finally {
      if (this.camRun?.requestId === m.requestId) this.camRun = undefined;
    }
  }

  private defaultExportUri(suffix: string): vscode.Uri {
    const parsed = path.parse(this.image.fsPath);
    const method = (this.last?.method ?? this.state.method).replace(/\+/g, 'pp');
    const cls = this.last ? `-${this.last.target.label.split(',')[0].replace(/[^\w.-]+/g, '_')}` : '';
    return vscode.Uri.file(path.join(parsed.dir, `${parsed.name}.${method}${cls}${suffix}`));
  }

  private async exportPng(colormap: ExplainViewState['colormap'], opacity: number): Promise<string | undefined> {
    if (!this.last) throw Object.assign(new Error('there is no map to export yet'), { code: 'BAD_ARGUMENT' });
    const target = await vscode.window.showSaveDialog({ defaultUri: this.defaultExportUri('.png'), filters: { PNG: ['png'] }, title: 'Export the overlay as PNG' });
    if (!target) return undefined;
    const r = await this.s.engine.renderOverlay({ image: this.shownImageRef(), heatmap: this.last.heatmap, colormap, opacity });
    await vscode.workspace.fs.writeFile(target, r.png);
    this.s.log.line(`exported ${target.fsPath} (${r.width}x${r.height})`);
    return target.fsPath;
  }

  private async exportJson(): Promise<string | undefined> {
    const r = this.last;
    if (!r) throw Object.assign(new Error('there is no map to export yet'), { code: 'BAD_ARGUMENT' });
    const target = await vscode.window.showSaveDialog({ defaultUri: this.defaultExportUri('.json'), filters: { JSON: ['json'] }, title: 'Export the map as JSON' });
    if (!target) return undefined;
    // The same object `cam-lens cam --json` writes.
    const json = {
      model: this.modelPath,
      ...(this.outputName !== undefined ? { output: this.outputName } : {}),
      image: this.image.fsPath,
      ...this.dicomExport(),
      backend: r.backend,
      method: r.method,
      layer: r.layer,
      ...(r.layers ? { layers: r.layers } : {}),
      ...(this.lastOptions && Object.keys(this.lastOptions).length ? { options: this.lastOptions } : {}),
      target: r.target,
      predictions: this.lastPredictions?.predictions ?? [],
      heatmap: {
        width: r.heatmap.width,
        height: r.heatmap.height,
        // A signed pixel map's values are in [-1, 1]; an RGB one (guided backpropagation) also has its image.
        ...(r.heatmap.signed ? { signed: true } : {}),
        values: Array.from(r.heatmap.values, (v) => Number(v.toPrecision(6))),
        ...(r.heatmap.rgb ? { rgb: Array.from(r.heatmap.rgb, (v) => Number(v.toPrecision(4))) } : {}),
        rawMin: r.heatmap.rawMin,
        rawMax: r.heatmap.rawMax,
      },
      ...(r.details ? { details: r.details } : {}),
      timingsMs: r.timingsMs,
    };
    await vscode.workspace.fs.writeFile(target, Buffer.from(JSON.stringify(json, null, 2) + '\n'));
    this.s.log.line(`exported ${target.fsPath}`);
    return target.fsPath;
  }

  /** `dicom` of the JSON export, as `cam-lens cam --json` writes it: which frame and window fed the model. */
  private dicomExport(): Record<string, unknown> {
    const d = this.imageInfo?.dicom;
    if (!d) return {};
    const note = this.modelChannels === undefined ? undefined : channelNote(this.imageInfo?.channels ?? 3, this.modelChannels);
    return { dicom: { ...dicomJson(d), ...(note ? { channels: note } : {}) } };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.releaseModel();
  }
}
