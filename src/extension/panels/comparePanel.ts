/**
 * The compare panel (issue #14 item 4): two models side by side. Image mode ("Compare with Another Model…" in the
 * explain panel): both models' predictions and maps of one class and method over the image, the difference map
 * A - B and the rank correlation of the maps. Folder mode ("Compare Two Models on Folder"): every sample of a
 * labelled folder ranked by disagreement (top-1 differs first, then the lowest correlation), each openable in the
 * side-by-side view of the same panel. Compute runs in the engine worker (compare/image, compare/run); the panel
 * validates webview messages (shared/compareProtocol.ts) and answers every request exactly once.
 */
import * as path from 'path';
import * as vscode from 'vscode';
import type { EngineClient } from '../engineClient';
import { isCancellation } from '../engineClient';
import type { CompareRunResult } from '../workerProtocol';
import type { Log } from '../log';
import type { ModelChoice } from '../modelChoice';
import {
  isCompareViewState,
  isCompareWebviewMessage,
  type CompareHostMessage,
  type CompareRow,
  type CompareViewState,
  type CompareWebviewMessage,
} from '../../shared/compareProtocol';
import { toPayload } from './explainPanel';
import { panelOptions, renderPanel } from './webviewAssets';
import { modelDisplayName } from './modelNames';

export const COMPARE_VIEW_TYPE = 'camLens.compare';

/** Formats Chromium shows directly; the others show the maps without the image under them. */
const BROWSER_FORMATS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp']);

interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelChoice;
  log: Log;
}

export class ComparePanels implements vscode.WebviewPanelSerializer<unknown> {
  private readonly open = new Set<ComparePanel>();

  constructor(private readonly s: Services) {}

  /** Image mode: `modelA` against `modelB` on `image`, starting with `method` and `classLabel` ('' = A's top-1). */
  showImage(image: string, modelA: string, modelB: string, method = 'gradcam', classLabel = ''): void {
    this.create({ version: 1, modelA, modelB, mode: 'image', source: image, method, classLabel, opacity: 0.5 });
  }

  /** Folder mode over a labelled folder or label file. */
  showFolder(data: string, modelA: string, modelB: string): void {
    this.create({ version: 1, modelA, modelB, mode: 'folder', source: data, method: 'gradcam', classLabel: '', opacity: 0.5 });
  }

  private create(state: CompareViewState): void {
    const title = `Compare: ${path.basename(state.source)}`;
    const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
      panelOptions(this.s.context, [vscode.Uri.file(rootOf(state))]));
    this.attach(panel, state);
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    if (!isCompareViewState(state)) {
      panel.dispose();
      return;
    }
    panel.webview.options = panelOptions(this.s.context, [vscode.Uri.file(rootOf(state))]);
    this.attach(panel, state);
  }

  private attach(panel: vscode.WebviewPanel, state: CompareViewState): void {
    const p = new ComparePanel(this.s, panel, state);
    this.open.add(p);
    panel.onDidDispose(() => {
      this.open.delete(p);
      p.dispose();
    });
  }
}

/** The folder the panel may show images from: the image's folder, or the dataset's. */
function rootOf(state: CompareViewState): string {
  return state.mode === 'image' || /\.(csv|json)$/i.test(state.source) ? path.dirname(state.source) : state.source;
}

let runSeq = 0;
let panelSeq = 0;

class ComparePanel {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly releases: (() => void)[];
  private state: CompareViewState;
  private run?: { id: number; abort: AbortController; rows: CompareRow[]; done: number; total: number; failed: number };
  /** The last finished folder run, sent again when the webview reloads (it is not kept while hidden). */
  private finished?: Extract<CompareHostMessage, { type: 'folder/didFinish' }>;
  /** Folder mode: the dataset root the rows' paths are relative to (known once a run replied). */
  private root: string;
  private disposed = false;
  private readonly key = ++panelSeq;

  constructor(private readonly s: Services, private readonly panel: vscode.WebviewPanel, state: CompareViewState) {
    this.state = state;
    this.root = rootOf(state);
    this.releases = [s.engine.holdModel(state.modelA), s.engine.holdModel(state.modelB)];
    panel.webview.html = renderPanel(s.context, panel.webview, 'compare', 'Compare models');
    this.disposables.push(panel.webview.onDidReceiveMessage((m: unknown) => void this.onMessage(m)));
  }

  private post(m: CompareHostMessage): void {
    if (!this.disposed) void this.panel.webview.postMessage(m);
  }

  private async onMessage(raw: unknown): Promise<void> {
    if (!isCompareWebviewMessage(raw)) {
      this.s.log.line(`compare panel: ignored a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const m: CompareWebviewMessage = raw;
    switch (m.type) {
      case 'panel/ready':
        await this.init();
        return;
      case 'compare/compute':
        await this.compute(m);
        return;
      case 'folder/run':
        this.state = { ...this.state, method: m.method, classLabel: m.classLabel };
        void this.runFolder();
        return;
      case 'folder/cancel':
        this.run?.abort.abort();
        return;
      case 'state/didChange':
        // Only the UI state may change; the models and the source are the panel's own.
        this.state = { ...m.state, modelA: this.state.modelA, modelB: this.state.modelB, mode: this.state.mode, source: this.state.source };
        return;
    }
  }

  private async init(): Promise<void> {
    try {
      const [a, b] = await Promise.all([
        this.s.engine.describeModel({ path: this.state.modelA }),
        this.s.engine.describeModel({ path: this.state.modelB }),
      ]);
      const inB = new Set(b.info.labels.map((l) => l.toLowerCase()));
      const bMethods = new Map(b.methods.map((x) => [x.id, x.available]));
      this.post({
        type: 'panel/didInit',
        mode: this.state.mode,
        modelA: { path: this.state.modelA, name: modelDisplayName(this.state.modelA) || a.info.name },
        modelB: { path: this.state.modelB, name: modelDisplayName(this.state.modelB) || b.info.name },
        sourceName: path.basename(this.state.source),
        methods: a.methods.filter((x) => x.available && bMethods.get(x.id) === true).map((x) => ({ id: x.id, label: x.label })),
        classes: a.info.labels.filter((l) => inB.has(l.toLowerCase())),
        state: this.state,
      });
      if (this.state.mode !== 'folder') return;
      // A reloaded webview (hidden and shown again) gets the run in progress or the last result, not a new run.
      const run = this.run;
      if (run) {
        this.post({ type: 'folder/didStart', runId: run.id, total: run.total });
        this.post({ type: 'folder/didProgress', runId: run.id, done: run.done, total: run.total, failed: run.failed, rows: run.rows });
      } else if (this.finished) {
        this.post({ type: 'folder/didStart', runId: this.finished.runId, total: this.finished.rows.length });
        this.post(this.finished);
      } else void this.runFolder();
    } catch (e) {
      this.s.log.error('compare', e);
      this.post({ type: 'panel/didFail', error: toPayload(e) });
    }
  }

  private imagePath(rel?: string): string {
    if (this.state.mode === 'image' || rel === undefined) return this.state.source;
    const p = path.resolve(this.root, rel);
    // Only samples inside the dataset: the path comes from the webview.
    const within = path.relative(this.root, p);
    if (within.startsWith('..') || path.isAbsolute(within)) throw Object.assign(new Error(`${rel} is not inside ${this.root}`), { code: 'BAD_ARGUMENT' });
    return p;
  }

  private async compute(m: Extract<CompareWebviewMessage, { type: 'compare/compute' }>): Promise<void> {
    try {
      const image = this.imagePath(m.path);
      const result = await this.s.engine.compareImage({
        modelA: { path: this.state.modelA }, modelB: { path: this.state.modelB }, image: { path: image, maxPixels: maxPixels() },
        method: m.method, ...(m.classLabel ? { classLabel: m.classLabel } : {}),
      }, { supersedeKey: `compare:${this.key}:image` });
      const uri = BROWSER_FORMATS.has(path.extname(image).toLowerCase()) ? this.panel.webview.asWebviewUri(vscode.Uri.file(image)).toString() : undefined;
      this.post({ type: 'compare/didCompute', requestId: m.requestId, path: m.path ?? image, imageName: path.basename(image), ...(uri ? { imageUri: uri } : {}), result });
    } catch (e) {
      if (!isCancellation(e)) this.s.log.error('compare', e);
      this.post({ type: 'request/didFail', requestId: m.requestId, error: toPayload(e) });
    }
  }

  private async runFolder(): Promise<void> {
    this.run?.abort.abort();
    const id = ++runSeq;
    const abort = new AbortController();
    const run = { id, abort, rows: [] as CompareRow[], done: 0, total: 0, failed: 0 };
    this.run = run;
    this.post({ type: 'folder/didStart', runId: id, total: 0 });
    const isFile = /\.(csv|json)$/i.test(this.state.source);
    let r: CompareRunResult;
    try {
      r = await this.s.engine.compareRun({
        modelA: { path: this.state.modelA }, modelB: { path: this.state.modelB }, data: this.state.source, method: this.state.method,
        ...(this.state.classLabel ? { classLabel: this.state.classLabel } : {}), maxPixels: maxPixels(),
        ...(isFile ? { labelsFile: this.state.source } : {}),
      }, {
        signal: abort.signal,
        onEvent: (e) => {
          run.rows.push(...e.rows);
          Object.assign(run, { done: e.done, total: e.total, failed: e.failed });
          this.post({ type: 'folder/didProgress', runId: id, done: e.done, total: e.total, failed: e.failed, rows: e.rows });
        },
      });
    } catch (e) {
      if (!isCancellation(e)) this.s.log.error('compare', e);
      this.post({ type: 'folder/didFail', runId: id, error: toPayload(e) });
      return;
    } finally {
      if (this.run?.id === id) this.run = undefined;
    }
    this.root = r.root;
    this.finished = { type: 'folder/didFinish', runId: id, rows: r.rows, failed: r.failures.length, cancelled: r.cancelled, seconds: r.seconds };
    this.post(this.finished);
  }

  dispose(): void {
    this.disposed = true;
    this.run?.abort.abort();
    for (const r of this.releases) r();
    for (const d of this.disposables) d.dispose();
  }
}

function maxPixels(): number | undefined {
  const n = vscode.workspace.getConfiguration('camLens').get<number>('maxImagePixels');
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
}
