/**
 * "Show Model Strategies" (issue #14 item 3): the strategies panel. One panel per dataset (folder or CSV/JSON label
 * file), revealed again when already open, restored after a reload by its serializer (which analyses again; the
 * engine's map cache makes that quick while the worker lives).
 *
 * The analysis runs in the engine worker (`strategies/run`, engine/analysis): a map per image of the chosen method
 * at the chosen layer, per class the average map and image, spectral clusters of the maps and their shortcut
 * hints. It streams progress; Cancel stops it and the reply still carries what was computed (clustered). This
 * panel keeps the run's state (options, last progress, the report) as the source of truth and replays it to a
 * webview that was reloaded (retainContextWhenHidden is off). Another k re-clusters: the same request with another
 * `clusters`, answered from the engine's cached maps. Every webview request is answered exactly once.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { isCancellation, type EngineClient } from '../engineClient';
import type { ModelChoice } from '../modelChoice';
import type { Log } from '../log';
import type { DescribeResult, StrategiesEvent, StrategiesParams } from '../workerProtocol';
import type { StrategiesReport } from '../engine/analysis/types';
import {
  isStrategiesViewState,
  isStrategiesWebviewMessage,
  type CamMethodId,
  type ColormapId,
  type ErrorPayload,
  type StrategiesHostMessage,
  type StrategiesRunOptions,
  type StrategiesViewState,
  type StrategiesWebviewMessage,
} from '../../shared/protocol';
import type { StrategiesView, StrategyClusterCount } from '../../shared/strategies';
import { toPayload } from './explainPanel';
import { modelDisplayName } from './modelNames';
import { memberFile, toStrategiesView } from './strategiesView';
import { panelOptions, renderPanel } from './webviewAssets';

export const STRATEGIES_VIEW_TYPE = 'camLens.strategies';

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

/** The folder a dataset's sample paths are relative to: the folder itself, or the label file's folder. */
function rootOf(source: string): string {
  try {
    return fs.statSync(source).isDirectory() ? source : path.dirname(source);
  } catch {
    return path.dirname(source);
  }
}

export class StrategiesPanels implements vscode.WebviewPanelSerializer<unknown> {
  private readonly open = new Map<string, StrategiesPanel>();

  constructor(private readonly s: Services) {}

  /** Opens (or reveals) the strategies panel of a dataset folder or label file; `modelPath` as the triage panel's. */
  async show(source: vscode.Uri, modelPath?: string): Promise<void> {
    const key = source.fsPath;
    const existing = this.open.get(key);
    if (existing) {
      existing.panel.reveal(vscode.ViewColumn.Active);
      if (modelPath && path.resolve(modelPath) !== path.resolve(existing.modelPath)) existing.useModel(modelPath);
      return;
    }
    const model = modelPath ?? (await this.s.models.resolveFor(source));
    if (!model) return; // the user closed the picker
    const panel = vscode.window.createWebviewPanel(STRATEGIES_VIEW_TYPE, `Strategies: ${path.basename(key)}`, { viewColumn: vscode.ViewColumn.Active, preserveFocus: false },
      panelOptions(this.s.context, [vscode.Uri.file(rootOf(key))]));
    this.attach(panel, key, model);
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    if (!isStrategiesViewState(state) || !fs.existsSync(state.source)) {
      panel.dispose();
      return;
    }
    const source = vscode.Uri.file(state.source);
    const model = fs.existsSync(state.modelPath) ? state.modelPath : this.s.models.configured(source) ?? this.s.models.nearby(source) ?? this.s.models.demoModel;
    panel.webview.options = panelOptions(this.s.context, [vscode.Uri.file(rootOf(state.source))]);
    this.attach(panel, state.source, model, state);
  }

  private attach(panel: vscode.WebviewPanel, source: string, modelPath: string, state?: StrategiesViewState): void {
    const p = new StrategiesPanel(this.s, panel, source, modelPath, state);
    this.open.set(source, p);
    panel.onDidDispose(() => {
      if (this.open.get(source) === p) this.open.delete(source);
      p.dispose();
    });
  }

  get count(): number {
    return this.open.size;
  }
}

/** One analysis: its options, its progress, its end. */
interface Run {
  id: number;
  abort: AbortController;
  options: StrategiesRunOptions;
  progress?: Extract<StrategiesHostMessage, { type: 'strategies/didProgress' }>;
  report?: StrategiesReport;
  view?: StrategiesView;
  failed?: ErrorPayload;
}

class StrategiesPanel {
  private run: Run | undefined;
  private runSeq = 0;
  private ready = false;
  private state: StrategiesViewState;
  private described?: Promise<DescribeResult>;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly key = `strategies:${Math.random().toString(36).slice(2)}`;
  /** Lets go of the model this panel analyses with (the engine frees it a while after its last panel closed). */
  private releaseModel: () => void;

  constructor(private readonly s: Services, readonly panel: vscode.WebviewPanel, readonly source: string, public modelPath: string, state?: StrategiesViewState) {
    this.releaseModel = s.engine.holdModel(modelPath);
    this.state = state ?? { version: 1, source, modelPath, method: this.config.get<CamMethodId>('defaultMethod', 'gradcam'), clusters: 'auto' };
    this.state = { ...this.state, source, modelPath };
    panel.iconPath = vscode.Uri.joinPath(s.context.extensionUri, 'media', 'icon.svg');
    panel.webview.html = renderPanel(s.context, panel.webview, 'strategies', `Model strategies in ${path.basename(source)}`);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)),
      // A hidden webview is gone (no retained context): it says panel/ready again when shown, and gets a replay.
      panel.onDidChangeViewState((e) => {
        if (!e.webviewPanel.visible) this.ready = false;
      }),
    );
    this.startRun(this.optionsOf(this.state));
  }

  private get config() {
    return vscode.workspace.getConfiguration('camLens', vscode.Uri.file(this.source));
  }

  private post(m: StrategiesHostMessage): void {
    if (this.ready) void this.panel.webview.postMessage(m);
  }

  private optionsOf(s: StrategiesViewState): StrategiesRunOptions {
    return {
      method: s.method,
      clusters: s.clusters,
      ...(s.layer !== undefined ? { layer: s.layer } : {}),
      ...(s.classIndex !== undefined ? { classIndex: s.classIndex } : {}),
    };
  }

  private async onMessage(raw: unknown): Promise<void> {
    if (!isStrategiesWebviewMessage(raw)) {
      this.s.log.line(`strategies panel: ignored an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const m: StrategiesWebviewMessage = raw;
    switch (m.type) {
      case 'panel/ready':
        this.ready = true;
        await this.replay();
        return;
      case 'strategies/run':
        this.state = { ...this.state, method: m.options.method, layer: m.options.layer, clusters: m.options.clusters, classIndex: m.options.classIndex };
        this.startRun(m.options);
        return;
      case 'strategies/cancel':
        this.run?.abort.abort();
        return;
      case 'strategies/recluster':
        await this.answer(m.requestId, () => this.recluster(m.requestId, m.clusters));
        return;
      case 'sample/open':
        await this.answer(m.requestId, async () => {
          const report = this.run?.report;
          const file = report ? memberFile(report, m.classIndex, m.path) : undefined;
          if (!file) {
            throw Object.assign(new Error(`"${m.path}" is not an image of class ${m.classIndex} in the current analysis`), { code: 'BAD_ARGUMENT', hint: 'analyse the dataset again' });
          }
          // The explain panel shows the same model, explaining the class the image was analysed for.
          await vscode.commands.executeCommand('camLens.showCam', vscode.Uri.file(file), { model: this.modelPath, classIndex: m.classIndex });
          this.post({ type: 'sample/didOpen', requestId: m.requestId, path: m.path });
        });
        return;
      case 'state/didChange':
        this.state = { ...m.state, source: this.source, modelPath: this.modelPath };
        return;
      default: {
        const never: never = m;
        void never;
      }
    }
  }

  /** Runs a request's handler, which posts its own success reply; any failure becomes its one `request/didFail`. */
  private async answer(requestId: number, f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      if (!isCancellation(e) && (e as { code?: string })?.code !== 'CANCELLED') this.s.log.error('strategies', e);
      this.post({ type: 'request/didFail', requestId, error: toPayload(e) });
    }
  }

  useModel(modelPath: string): void {
    const release = this.releaseModel;
    this.releaseModel = this.s.engine.holdModel(modelPath);
    release();
    this.modelPath = modelPath;
    this.described = undefined;
    // Another model has other layers and maybe other classes: those choices start afresh.
    this.state = { ...this.state, modelPath, layer: undefined, classIndex: undefined, expanded: undefined };
    if (this.ready) void this.postInit();
    this.startRun(this.optionsOf(this.state));
  }

  private describe(): Promise<DescribeResult> {
    this.described ??= this.s.engine.describeModel({ path: this.modelPath });
    return this.described;
  }

  private async postInit(): Promise<void> {
    let d: DescribeResult;
    try {
      d = await this.describe();
    } catch (e) {
      this.described = undefined;
      this.s.log.error(`strategies: describing ${this.modelPath}`, e);
      this.post({ type: 'panel/didFail', error: toPayload(e) });
      return;
    }
    // A state restored for another model may name a layer or class it does not have.
    if (this.state.layer !== undefined && !d.info.spatialLayers.includes(this.state.layer)) this.state = { ...this.state, layer: undefined };
    if (this.state.classIndex !== undefined && this.state.classIndex >= d.info.labels.length) this.state = { ...this.state, classIndex: undefined };
    this.post({
      type: 'panel/didInit',
      modelName: modelDisplayName(this.modelPath),
      modelPath: this.modelPath,
      source: this.source,
      sourceName: path.basename(this.source),
      methods: d.methods.filter((x) => (x.group ?? 'cam') === 'cam').map((x) => ({ id: x.id, label: x.label, available: x.available })),
      layers: d.info.spatialLayers,
      recommendedLayer: d.info.recommendedLayer,
      labels: d.info.labels,
      colormap: this.config.get<ColormapId>('colormap', 'turbo'),
      opacity: Math.max(0, Math.min(1, this.config.get<number>('opacity', 0.5))),
      state: this.state,
    });
  }

  /** Everything the webview needs after a (re)load: init, then the run's start and its progress or end. */
  private async replay(): Promise<void> {
    await this.postInit();
    const run = this.run;
    if (!run) return;
    this.post({ type: 'strategies/didStart', runId: run.id, options: run.options });
    if (run.view) this.post({ type: 'strategies/didFinish', runId: run.id, view: run.view });
    else if (run.failed) this.post({ type: 'strategies/didFail', runId: run.id, error: run.failed });
    else if (run.progress) this.post(run.progress);
  }

  private params(options: StrategiesRunOptions): StrategiesParams {
    return {
      model: { path: this.modelPath },
      data: this.source,
      method: options.method,
      clusters: options.clusters,
      ...(options.layer !== undefined ? { layer: options.layer } : {}),
      ...(options.classIndex !== undefined ? { classes: [options.classIndex] } : {}),
      maxPixels: this.config.get<number>('maxImagePixels'),
    };
  }

  private toView(report: StrategiesReport): StrategiesView {
    return toStrategiesView(report, (file) => this.panel.webview.asWebviewUri(vscode.Uri.file(file)).toString());
  }

  private startRun(options: StrategiesRunOptions): void {
    this.run?.abort.abort();
    const run: Run = { id: ++this.runSeq, abort: new AbortController(), options };
    this.run = run;
    this.post({ type: 'strategies/didStart', runId: run.id, options });
    const onEvent = (e: StrategiesEvent) => {
      if (this.run !== run || e.kind !== 'progress') return;
      run.progress = {
        type: 'strategies/didProgress', runId: run.id, phase: e.phase, done: e.done, total: e.total,
        mapsPerSecond: e.mapsPerSecond, secondsLeft: e.secondsLeft, failed: e.failed,
      };
      this.post(run.progress);
    };
    this.s.engine
      .strategies(this.params(options), { signal: run.abort.signal, supersedeKey: `${this.key}:run`, onEvent })
      .then(
        (report) => {
          if (this.run !== run) return;
          run.report = report;
          run.view = this.toView(report);
          this.post({ type: 'strategies/didFinish', runId: run.id, view: run.view });
          const k = report.classes.map((c) => `${c.label} ${c.clusters.length}`).join(', ');
          this.s.log.line(`strategies of ${this.source}: ${report.counts.analysed} of ${report.counts.images} images, ${report.method} at ${report.layer}; clusters: ${k || 'none'}${report.cancelled ? '; cancelled' : ''} (${report.seconds.toFixed(1)} s)`);
        },
        (e: unknown) => {
          if (this.run !== run) return;
          run.failed = isCancellation(e)
            ? { name: 'Cancelled', message: 'The analysis was cancelled before it started.', code: 'CANCELLED' }
            : toPayload(e);
          if (!isCancellation(e)) this.s.log.error(`strategies of ${this.source}`, e);
          this.post({ type: 'strategies/didFail', runId: run.id, error: run.failed });
        },
      );
  }

  /** The finished run's maps clustered with another k: the same request, answered from the engine's cached maps. */
  private async recluster(requestId: number, clusters: StrategyClusterCount): Promise<void> {
    const run = this.run;
    if (!run?.report) {
      throw Object.assign(new Error('there is no finished analysis to cluster again'), { code: 'BAD_ARGUMENT', hint: 'wait for the analysis, or cancel it to cluster what it computed' });
    }
    const options = { ...run.options, clusters };
    if (run.report.cancelled) {
      // Cancelled: some maps are missing, and computing them is a run with progress and Cancel, not a re-clustering.
      this.state = { ...this.state, clusters };
      this.startRun(options);
      throw Object.assign(new Error('the maps are computed again: the analysis was cancelled'), { name: 'Cancelled', code: 'SUPERSEDED' });
    }
    const report = await this.s.engine.strategies(this.params(options), { supersedeKey: `${this.key}:recluster` });
    if (this.run !== run) throw Object.assign(new Error('a new analysis started meanwhile'), { name: 'Cancelled', code: 'SUPERSEDED' });
    run.options = options;
    run.report = report;
    run.view = this.toView(report);
    this.state = { ...this.state, clusters };
    this.post({ type: 'strategies/didRecluster', requestId, clusters, view: run.view });
  }

  dispose(): void {
    // Late replies must not reach a disposed webview.
    this.ready = false;
    this.run?.abort.abort();
    this.run = undefined;
    for (const d of this.disposables) d.dispose();
    this.releaseModel();
  }
}
