/**
 * "Find Likely Mislabeled Samples": the triage panel. One panel per dataset (folder or CSV/JSON label file),
 * revealed again when already open, restored after a reload by its serializer (which rescans).
 *
 * The scan runs in the engine worker (`scan/run`), streaming rows; this panel keeps the scan's state (rows with
 * their current flags, counts, the final report) as the source of truth, and the webview shows it. The webview
 * is not kept alive when hidden (retainContextWhenHidden is off), so each `panel/ready` gets a replay of the
 * current scan. Every webview request is answered exactly once.
 *
 * Relabelling ("Move to class…") goes through a WorkspaceEdit applied with `vscode.workspace.applyEdit`: a file
 * move (renameFile, never overwriting: a taken name gets a numeric suffix) for folder datasets, a text edit of
 * the label file for CSV/JSON datasets (saved when it had no unsaved changes before; Ctrl+Z in its editor undoes
 * it). VS Code's Ctrl+Z in the Explorer undoes only the Explorer's own file operations, not an extension's
 * WorkspaceEdit, so every move can also be undone here: from the notification that reports it, or with U in the
 * panel (`sample/undoMove`), which applies the reverse edit the same way.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { isCancellation, type EngineClient } from '../engineClient';
import type { ModelChoice } from '../modelChoice';
import type { Log } from '../log';
import type { CamPairResult, ScanEvent, ScanReport } from '../workerProtocol';
import { reportToCsv } from '../engine/scan/report';
import {
  isTriageViewState,
  isTriageWebviewMessage,
  type CamMethodId,
  type ColormapId,
  type ErrorPayload,
  type ScanDatasetInfo,
  type ScanFailureInfo,
  type TriageCounts,
  type TriageHostMessage,
  type TriageRow,
  type TriageViewState,
  type TriageWebviewMessage,
} from '../../shared/protocol';
import { toPayload } from './explainPanel';
import {
  classFolderFor,
  csvLabelEdits,
  freeName,
  jsonLabelEdits,
  labelText,
  moveChoices,
  movePlaceholder,
  namesSample,
  probabilityVector,
  reflagMoved,
  scoresFor,
  thresholdVector,
  type TextEdit,
} from './triageRelabel';
import { modelDisplayName } from './modelNames';
import { panelOptions, renderPanel } from './webviewAssets';

export const TRIAGE_VIEW_TYPE = 'camLens.triage';

/** Images per forward pass of a scan. */
const SCAN_BATCH_SIZE = 16;
/** Rows per message when replaying a scan to a reloaded webview. */
const REPLAY_CHUNK = 1000;
const PAIR_CACHE_SIZE = 64;
/** Image files Chromium shows itself; the others (DICOM, TIFF, no extension) the engine renders as PNG. */
const BROWSER_IMAGE = /\.(png|jpe?g|webp|gif|bmp)$/i;

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

export class TriagePanels implements vscode.WebviewPanelSerializer<unknown> {
  private readonly open = new Map<string, TriagePanel>();

  constructor(private readonly s: Services) {}

  /** Opens (or reveals) the triage panel of a dataset folder or label file. */
  async show(source: vscode.Uri, modelPath?: string): Promise<void> {
    const key = source.fsPath;
    const existing = this.open.get(key);
    if (existing) {
      existing.panel.reveal(vscode.ViewColumn.Active);
      if (modelPath && modelPath !== existing.modelPath) existing.useModel(modelPath);
      return;
    }
    const model = modelPath ?? (await this.s.models.resolveFor(source));
    if (!model) return; // the user closed the picker
    const panel = vscode.window.createWebviewPanel(TRIAGE_VIEW_TYPE, `Mislabeled: ${path.basename(key)}`, { viewColumn: vscode.ViewColumn.Active, preserveFocus: false },
      panelOptions(this.s.context, [vscode.Uri.file(rootOf(key))]));
    this.attach(panel, key, model);
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    if (!isTriageViewState(state) || !fs.existsSync(state.source)) {
      panel.dispose();
      return;
    }
    const source = vscode.Uri.file(state.source);
    const model = fs.existsSync(state.modelPath) ? state.modelPath : this.s.models.configured(source) ?? this.s.models.nearby(source) ?? this.s.models.demoModel;
    panel.webview.options = panelOptions(this.s.context, [vscode.Uri.file(rootOf(state.source))]);
    this.attach(panel, state.source, model, state);
  }

  private attach(panel: vscode.WebviewPanel, source: string, modelPath: string, state?: TriageViewState): void {
    const p = new TriagePanel(this.s, panel, source, modelPath, state);
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

/** One scan's state: what the webview is shown, and what a reloaded webview is replayed. */
interface Scan {
  id: number;
  abort: AbortController;
  dataset?: ScanDatasetInfo;
  /** Rows by seq, current flags, marked ones removed, moved ones updated. */
  rows: Map<number, TriageRow>;
  /** seq by dataset-relative path (kept current across moves). */
  byPath: Map<string, number>;
  failures: ScanFailureInfo[];
  counts: TriageCounts;
  /** Rows marked "label is correct" in this panel since the scan started. */
  marked: number;
  progress?: { done: number; total: number; imagesPerSecond: number; secondsLeft: number };
  finished?: { cancelled: boolean; seconds: number; order: Int32Array; flagged: Int32Array };
  report?: ScanReport;
  /** Report samples by seq (after the scan), to keep the report in step with marks and moves. */
  reportBySeq?: Map<number, ScanReport['samples'][number]>;
  failed?: ErrorPayload;
  /** Undo records of the moves made in this panel, per seq, most recent last. */
  moves: Map<number, MoveRecord[]>;
  /**
   * Confident-learning thresholds per label index, as of the latest result (the report's at the end): a moved
   * row's flag is judged with them for its new label.
   */
  thresholds?: Float64Array;
  /** Every class's probability of the rows moved in this panel (by seq): their scores for any label. */
  probs: Map<number, Float32Array>;
}

/** How to put a moved sample back. */
type MoveRecord =
  | { kind: 'file'; before: TriageRow; from: string; to: string }
  | { kind: 'label'; before: TriageRow; originals: string[] };

function emptyCounts(): TriageCounts {
  return { images: 0, samples: 0, scanned: 0, failed: 0, flagged: 0, reviewedHidden: 0, nonImageFiles: 0, unmatchedImages: 0, missingFiles: 0 };
}

class TriagePanel {
  private scan: Scan | undefined;
  private scanSeq = 0;
  private ready = false;
  private state: TriageViewState;
  private modelName: string;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly key = `triage:${Math.random().toString(36).slice(2)}`;
  private readonly pairs = new Map<string, CamPairResult>();
  /** Lets go of the model this panel scans with (the engine frees it a while after its last panel closed). */
  private releaseModel: () => void;

  constructor(private readonly s: Services, readonly panel: vscode.WebviewPanel, readonly source: string, public modelPath: string, state?: TriageViewState) {
    this.releaseModel = s.engine.holdModel(modelPath);
    this.state = state ?? { version: 1, source, modelPath, flaggedOnly: false };
    this.state.modelPath = modelPath;
    this.modelName = modelDisplayName(modelPath);
    panel.iconPath = vscode.Uri.joinPath(s.context.extensionUri, 'media', 'icon.svg');
    panel.webview.html = renderPanel(s.context, panel.webview, 'triage', `Likely mislabeled samples in ${path.basename(source)}`);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)),
      // A hidden webview is gone (no retained context): it says panel/ready again when shown, and gets a replay.
      panel.onDidChangeViewState((e) => {
        if (!e.webviewPanel.visible) this.ready = false;
      }),
    );
    this.startScan();
  }

  private post(m: TriageHostMessage): void {
    if (this.ready) void this.panel.webview.postMessage(m);
  }

  private get config() {
    return vscode.workspace.getConfiguration('camLens', vscode.Uri.file(this.source));
  }

  private async onMessage(raw: unknown): Promise<void> {
    if (!isTriageWebviewMessage(raw)) {
      this.s.log.line(`triage panel: ignored an invalid message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const m: TriageWebviewMessage = raw;
    switch (m.type) {
      case 'panel/ready':
        this.ready = true;
        this.replay();
        return;
      case 'scan/cancel':
        this.scan?.abort.abort();
        return;
      case 'scan/rescan':
        this.startScan();
        return;
      case 'strategies/show':
        // The strategies panel of the same dataset, with the model this panel scans with.
        await vscode.commands.executeCommand('camLens.showStrategies', vscode.Uri.file(this.source), { model: this.modelPath });
        return;
      case 'output/select':
        // Another output of the model: other classes, so another scan (answered by its notifications).
        if (m.output === this.state.output) return;
        this.state = { ...this.state, output: m.output, givenFilter: undefined, predictedFilter: undefined };
        this.startScan();
        return;
      case 'cam/pair':
        await this.answer(m.requestId, () => this.pair(m.requestId, m.path));
        return;
      case 'sample/render':
        await this.answer(m.requestId, () => this.renderSample(m.requestId, m.path, m.maxSize));
        return;
      case 'sample/open':
        await this.answer(m.requestId, async () => {
          const abs = this.sampleFile(m.path);
          // With an output chosen here, the explain panel shows the same model and output.
          if (this.state.output !== undefined) await vscode.commands.executeCommand('camLens.showCam', vscode.Uri.file(abs), { model: this.modelPath, output: this.state.output });
          else await vscode.commands.executeCommand('camLens.showCam', vscode.Uri.file(abs));
          this.post({ type: 'sample/didOpen', requestId: m.requestId, path: m.path });
        });
        return;
      case 'sample/markCorrect':
        await this.answer(m.requestId, () => this.markCorrect(m.requestId, m.path));
        return;
      case 'sample/move':
        await this.answer(m.requestId, () => this.move(m.requestId, m.path));
        return;
      case 'sample/undoMove':
        await this.answer(m.requestId, async () => {
          const { scan, row } = this.rowOf(m.path);
          const restored = await this.undoMove(scan, row);
          this.post({ type: 'sample/didMove', requestId: m.requestId, path: m.path, row: restored, counts: scan.counts });
        });
        return;
      case 'report/save':
        await this.answer(m.requestId, () => this.save(m.requestId, m.format));
        return;
      case 'state/didChange':
        // The output is the host's to change (output/select rescans); a state message does not move it.
        this.state = { ...m.state, source: this.source, modelPath: this.modelPath, output: this.state.output };
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
      if (!isCancellation(e) && (e as { code?: string })?.code !== 'CANCELLED') this.s.log.error('triage', e);
      this.post({ type: 'request/didFail', requestId, error: toPayload(e) });
    }
  }

  useModel(modelPath: string): void {
    const release = this.releaseModel;
    this.releaseModel = this.s.engine.holdModel(modelPath);
    release();
    this.modelPath = modelPath;
    this.modelName = modelDisplayName(modelPath);
    this.state = { ...this.state, modelPath, output: undefined };
    this.pairs.clear();
    if (this.ready) this.postInit();
    this.startScan();
  }

  /** The model with the output chosen in the picker (a model of its own in the worker's cache), or its default. */
  private get modelRef(): { path: string; overrides?: { output: string } } {
    return this.state.output === undefined ? { path: this.modelPath } : { path: this.modelPath, overrides: { output: this.state.output } };
  }

  private postInit(): void {
    const method = this.config.get<CamMethodId>('defaultMethod', 'gradcam');
    this.post({
      type: 'panel/didInit',
      modelName: this.modelName,
      modelPath: this.modelPath,
      source: this.source,
      sourceName: path.basename(this.source),
      method,
      colormap: this.config.get<ColormapId>('colormap', 'turbo'),
      opacity: Math.max(0, Math.min(1, this.config.get<number>('opacity', 0.5))),
      state: this.state,
    });
  }

  // -------------------------------------------------------------------------------------------------------
  // The scan

  private startScan(): void {
    this.scan?.abort.abort();
    const scan: Scan = {
      id: ++this.scanSeq,
      abort: new AbortController(),
      rows: new Map(),
      byPath: new Map(),
      failures: [],
      counts: emptyCounts(),
      marked: 0,
      moves: new Map(),
      probs: new Map(),
    };
    this.scan = scan;
    this.pairs.clear();
    const maxPixels = this.config.get<number>('maxImagePixels');
    this.s.engine
      .scan(
        { model: this.modelRef, data: this.source, batchSize: SCAN_BATCH_SIZE, scoreKind: 'self_confidence', maxPixels },
        { signal: scan.abort.signal, supersedeKey: `${this.key}:scan`, onEvent: (e) => this.onScanEvent(scan, e) },
      )
      .then(
        (r) => {
          if (this.scan !== scan) return;
          this.finish(scan, r.report, r.order, r.cancelled, r.seconds);
          this.s.log.line(`scan of ${this.source}: ${r.report.counts.scanned} scanned, ${r.report.counts.flagged} flagged, ${r.report.counts.failed} unreadable${r.cancelled ? ', cancelled' : ''} (${r.seconds.toFixed(1)} s)`);
        },
        (e: unknown) => {
          if (this.scan !== scan) return;
          if (isCancellation(e)) {
            // Cancelled before it started (queued behind another scan): nothing was computed.
            scan.finished = { cancelled: true, seconds: 0, order: new Int32Array(0), flagged: new Int32Array(0) };
            this.post({ type: 'scan/didFinish', scanId: scan.id, cancelled: true, seconds: 0, counts: scan.counts, order: scan.finished.order, flagged: scan.finished.flagged });
            return;
          }
          // A restored state may name an output the model no longer has: scan its default output instead.
          if ((e as { code?: string })?.code === 'UNKNOWN_OUTPUT' && this.state.output !== undefined) {
            this.s.log.line(`scan of ${this.source}: ${(e as Error).message}; scanning the model's default output`);
            this.state = { ...this.state, output: undefined };
            this.startScan();
            return;
          }
          this.s.log.error(`scan of ${this.source}`, e);
          scan.failed = toPayload(e);
          this.post({ type: 'scan/didFail', scanId: scan.id, error: scan.failed });
        },
      );
    // A webview that is already there hears about the new scan with its dataset event (scan/didStart).
  }

  private toRow(scan: Scan, r: Extract<ScanEvent, { kind: 'progress' }>['rows'][number]): TriageRow {
    const root = scan.dataset?.root ?? rootOf(this.source);
    return { ...r, ...this.imageOf(path.join(root, ...r.path.split('/'))) };
  }

  /**
   * How the webview shows a sample: by its webview URI where Chromium decodes the format, else (DICOM, TIFF,
   * files without an extension) as a PNG the engine renders on request (`sample/render`).
   */
  private imageOf(file: string): Pick<TriageRow, 'imageUri' | 'rendered'> {
    return BROWSER_IMAGE.test(file)
      ? { imageUri: this.panel.webview.asWebviewUri(vscode.Uri.file(file)).toString() }
      : { imageUri: '', rendered: true };
  }

  /** A sample drawn by the engine as the model sees it (DICOM windowed), shrunk to `maxSize`. */
  private async renderSample(requestId: number, relPath: string, maxSize: number): Promise<void> {
    const file = this.sampleFile(relPath);
    const r = await this.s.engine.renderOverlay({
      image: { path: file, maxPixels: this.config.get<number>('maxImagePixels') },
      heatmap: { width: 1, height: 1, values: new Float32Array(1) }, colormap: 'gray', opacity: 0, maxSize,
    });
    this.post({ type: 'sample/didRender', requestId, path: relPath, png: r.png });
  }

  /** The flagged count: rows flagged for their current given label (a moved row's flag is its new label's). */
  private recount(scan: Scan): void {
    let flagged = 0;
    for (const r of scan.rows.values()) if (r.flagged) flagged++;
    scan.counts.flagged = flagged;
    const report = scan.report;
    if (report) report.counts.flagged = report.samples.filter((x) => x.flagged).length;
  }

  private onScanEvent(scan: Scan, e: ScanEvent): void {
    if (this.scan !== scan) return;
    if (e.kind === 'dataset') {
      scan.dataset = e.dataset;
      const c = e.dataset.counts;
      scan.counts = { ...emptyCounts(), images: c.images, samples: e.dataset.total, nonImageFiles: c.nonImageFiles, unmatchedImages: c.unmatchedImages, missingFiles: c.missingFiles };
      this.post({ type: 'scan/didStart', scanId: scan.id, dataset: e.dataset, counts: scan.counts });
      return;
    }
    const rows = e.rows.map((r) => this.toRow(scan, r));
    for (const r of rows) {
      scan.rows.set(r.seq, r);
      scan.byPath.set(r.path, r.seq);
    }
    const on: number[] = [];
    const off: number[] = [];
    // The worker judges every row by the label it was scanned with; a row moved here is judged below instead.
    for (const seq of e.flagsOn) {
      const r = scan.rows.get(seq);
      if (r && r.movedFrom === undefined) {
        r.flagged = true;
        on.push(seq);
      }
    }
    for (const seq of e.flagsOff) {
      const r = scan.rows.get(seq);
      if (r && r.movedFrom === undefined) {
        r.flagged = false;
        off.push(seq);
      }
    }
    scan.thresholds = e.thresholds;
    const moved = reflagMoved(scan.rows.values(), (seq) => scan.probs.get(seq), e.thresholds);
    on.push(...moved.on);
    off.push(...moved.off);
    scan.failures.push(...e.failures);
    scan.progress = { done: e.done, total: e.total, imagesPerSecond: e.imagesPerSecond, secondsLeft: e.secondsLeft };
    scan.counts = { ...scan.counts, scanned: e.scanned, failed: e.failed, reviewedHidden: e.hidden + scan.marked };
    this.recount(scan);
    this.post({ type: 'scan/didProgress', scanId: scan.id, ...scan.progress, counts: scan.counts, rows, failures: e.failures, flagsOn: Int32Array.from(on), flagsOff: Int32Array.from(off) });
  }

  /** The report arrived: its ranking and flags are final; marks and moves made meanwhile are applied to it. */
  private finish(scan: Scan, report: ScanReport, order: Int32Array, cancelled: boolean, seconds: number): void {
    const bySeq = new Map<number, ScanReport['samples'][number]>();
    report.samples.forEach((s, i) => bySeq.set(order[i], s));
    if (scan.dataset) scan.thresholds = thresholdVector(scan.dataset.labels, report.thresholds);
    const flagged: number[] = [];
    for (const [seq, s] of bySeq) {
      const row = scan.rows.get(seq);
      if (!row) continue; // marked correct while the scan ran
      const probs = scan.probs.get(seq);
      if (row.movedFrom !== undefined && probs && scan.dataset) {
        // Moved while the scan ran: the report judged the old label; the row and the report take the new one's.
        const now = scoresFor(probs, row.givenIndex, scan.dataset.scoredBy, scan.thresholds);
        Object.assign(row, now);
        Object.assign(s, now, { path: this.sampleFileOf(scan, row.path), relPath: row.path, givenLabel: row.givenLabel, relabeledFrom: row.movedFrom });
      } else row.flagged = s.flagged;
      if (row.flagged) flagged.push(seq);
    }
    scan.report = report;
    scan.reportBySeq = bySeq;
    const keptOrder = Int32Array.from([...order].filter((seq) => scan.rows.has(seq)));
    this.dropFromReport(scan);
    scan.finished = { cancelled, seconds, order: keptOrder, flagged: Int32Array.from(flagged) };
    scan.counts = {
      ...scan.counts,
      scanned: report.counts.scanned,
      failed: report.counts.failed,
      reviewedHidden: report.counts.reviewedHidden,
    };
    this.recount(scan);
    this.post({ type: 'scan/didFinish', scanId: scan.id, cancelled, seconds, counts: scan.counts, order: scan.finished.order, flagged: scan.finished.flagged });
  }

  /** Removes from the report the samples marked correct in this panel, renumbering ranks, as the next scan would. */
  private dropFromReport(scan: Scan): void {
    const report = scan.report;
    const bySeq = scan.reportBySeq;
    if (!report || !bySeq) return;
    const keep = new Set<ScanReport['samples'][number]>();
    for (const [seq, s] of bySeq) if (scan.rows.has(seq)) keep.add(s);
    const before = report.samples.length;
    report.samples = report.samples.filter((s) => keep.has(s));
    report.samples.forEach((s, i) => (s.rank = i + 1));
    report.counts.reviewedHidden += before - report.samples.length;
    report.counts.flagged = report.samples.filter((s) => s.flagged).length;
    for (const [seq] of bySeq) if (!scan.rows.has(seq)) bySeq.delete(seq);
  }

  /** Everything the webview needs after a (re)load: init, the scan so far, its end. */
  private replay(): void {
    this.postInit();
    const scan = this.scan;
    if (!scan) return;
    if (scan.dataset) {
      this.post({ type: 'scan/didStart', scanId: scan.id, dataset: scan.dataset, counts: scan.counts });
      const rows = [...scan.rows.values()];
      const p = scan.progress ?? { done: 0, total: scan.dataset.total, imagesPerSecond: 0, secondsLeft: 0 };
      for (let i = 0; i === 0 || i < rows.length; i += REPLAY_CHUNK) {
        this.post({
          type: 'scan/didProgress', scanId: scan.id, ...p, counts: scan.counts, rows: rows.slice(i, i + REPLAY_CHUNK),
          failures: i === 0 ? scan.failures : [], flagsOn: new Int32Array(0), flagsOff: new Int32Array(0),
        });
      }
    }
    if (scan.finished) {
      this.post({ type: 'scan/didFinish', scanId: scan.id, ...scan.finished, counts: scan.counts });
    } else if (scan.failed) {
      this.post({ type: 'scan/didFail', scanId: scan.id, error: scan.failed });
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Samples

  private sampleFileOf(scan: Scan | undefined, relPath: string): string {
    const root = scan?.dataset?.root ?? rootOf(this.source);
    return path.join(root, ...relPath.split('/'));
  }

  /** The row of a path the webview names; anything else (a stale or forged path) is refused. */
  private rowOf(relPath: string): { scan: Scan; row: TriageRow } {
    const scan = this.scan;
    const seq = scan?.byPath.get(relPath);
    const row = seq === undefined ? undefined : scan?.rows.get(seq);
    if (!scan || !row) {
      throw Object.assign(new Error(`"${relPath}" is not a sample of the current scan`), { code: 'BAD_ARGUMENT', hint: 'rescan the dataset' });
    }
    return { scan, row };
  }

  private sampleFile(relPath: string): string {
    const { scan, row } = this.rowOf(relPath);
    return this.sampleFileOf(scan, row.path);
  }

  private async pair(requestId: number, relPath: string): Promise<void> {
    const { scan, row } = this.rowOf(relPath);
    const file = this.sampleFileOf(scan, row.path);
    const method = this.config.get<CamMethodId>('defaultMethod', 'gradcam');
    const cacheKey = `${file}\u0000${row.givenIndex}\u0000${row.predictedIndex}\u0000${method}`;
    let r = this.pairs.get(cacheKey);
    if (!r) {
      r = await this.s.engine.camPair(
        { model: this.modelRef, image: { path: file, maxPixels: this.config.get<number>('maxImagePixels') }, method, classes: [row.givenIndex, row.predictedIndex],
          options: { batchSize: this.config.get<number>('scoreCam.batchSize'), channels: this.config.get<number>('scoreCam.channels') } },
        { supersedeKey: `${this.key}:pair` },
      );
      this.pairs.set(cacheKey, r);
      while (this.pairs.size > PAIR_CACHE_SIZE) this.pairs.delete(this.pairs.keys().next().value as string);
    }
    this.post({ type: 'cam/didComputePair', requestId, path: relPath, method: r.method, methodLabel: r.methodLabel, layer: r.layer, given: r.maps[0], predicted: r.maps[1],
      ...(r.maps[0].details ? { note: r.maps[0].details.note } : {}) });
  }

  private async markCorrect(requestId: number, relPath: string): Promise<void> {
    const { scan, row } = this.rowOf(relPath);
    const root = scan.dataset?.root ?? rootOf(this.source);
    await this.s.engine.markReviewed({ root, relPath: row.path, givenLabel: row.givenLabel });
    scan.rows.delete(row.seq);
    scan.byPath.delete(row.path);
    scan.marked++;
    scan.counts = { ...scan.counts, reviewedHidden: scan.counts.reviewedHidden + 1 };
    if (scan.finished) scan.finished = { ...scan.finished, order: scan.finished.order.filter((s) => s !== row.seq), flagged: scan.finished.flagged.filter((s) => s !== row.seq) };
    this.dropFromReport(scan);
    this.recount(scan);
    this.post({ type: 'sample/didMarkCorrect', requestId, path: relPath, counts: scan.counts });
  }

  private async move(requestId: number, relPath: string): Promise<void> {
    const { scan, row } = this.rowOf(relPath);
    const ds = scan.dataset;
    if (!ds) throw Object.assign(new Error('the dataset has not been read yet'), { code: 'BAD_ARGUMENT' });
    type Item = vscode.QuickPickItem & { index: number };
    // Every class's probability (the row holds only the top 5): the picker shows one for each class, and the
    // row's scores and flag are recomputed from them for the new label.
    const probs = await this.probabilitiesOf(scan, row);
    const items: Item[] = moveChoices(ds.labels, probs, row.givenIndex, row.predictedIndex);
    const choice = await vscode.window.showQuickPick(items, {
      title: `Move ${row.path} (given: ${row.givenLabel}) to class…`,
      placeHolder: movePlaceholder(ds.kind, ds.source),
      matchOnDescription: true,
    });
    if (!choice) throw Object.assign(new Error('no class was chosen'), { name: 'Cancelled', code: 'CANCELLED' });
    const target = choice.index;
    const label = ds.labels[target];
    let newRel = row.path;
    let record: MoveRecord;
    if (ds.kind === 'folder') {
      const moved = await this.moveFile(ds, row, target);
      newRel = moved.relPath;
      record = { kind: 'file', before: row, from: moved.from, to: moved.to };
    } else {
      record = { kind: 'label', before: row, originals: await this.rewriteLabel(ds, row.path, () => label) };
    }
    this.s.log.line(`relabelled ${row.path} from "${row.givenLabel}" to "${label}"${newRel !== row.path ? ` (moved to ${newRel})` : ` in ${ds.source}`}`);
    scan.probs.set(row.seq, probs);
    const moved: TriageRow = {
      ...row,
      path: newRel,
      givenIndex: target,
      givenLabel: label,
      movedFrom: row.movedFrom ?? row.givenLabel,
      ...this.imageOf(this.sampleFileOf(scan, newRel)),
      // Its probability, margin, score and flag now refer to the new label.
      ...scoresFor(probs, target, ds.scoredBy, scan.thresholds),
    };
    this.setRow(scan, row, moved);
    const stack = scan.moves.get(row.seq) ?? [];
    stack.push(record);
    scan.moves.set(row.seq, stack);
    this.post({ type: 'sample/didMove', requestId, path: relPath, row: moved, counts: scan.counts });
    const what = newRel !== row.path ? `Moved ${row.path} to ${newRel}` : `Relabelled ${row.path} as ${label} in ${path.basename(ds.source)}`;
    void vscode.window.showInformationMessage(`CAM Lens: ${what}.`, 'Undo').then(async (choice) => {
      // Only while that move is still the row's last one, in this scan.
      if (choice !== 'Undo' || this.scan !== scan || scan.moves.get(row.seq)?.at(-1) !== record) return;
      const now = scan.rows.get(row.seq);
      if (!now) return;
      try {
        const restored = await this.undoMove(scan, now);
        this.post({ type: 'sample/didChange', path: now.path, row: restored, counts: scan.counts });
      } catch (e) {
        this.s.log.error('undo move', e);
        void vscode.window.showErrorMessage(`CAM Lens: could not undo the move of ${now.path}: ${(e as Error).message}`);
      }
    });
  }

  /** Replaces a row (same seq) in the scan's books and in the report. */
  private setRow(scan: Scan, old: TriageRow, row: TriageRow): void {
    scan.rows.set(row.seq, row);
    if (scan.byPath.get(old.path) === row.seq) scan.byPath.delete(old.path);
    scan.byPath.set(row.path, row.seq);
    const s = scan.reportBySeq?.get(row.seq) as (ScanReport['samples'][number] & { relabeledFrom?: string }) | undefined;
    if (s) {
      Object.assign(s, {
        path: this.sampleFileOf(scan, row.path), relPath: row.path, givenLabel: row.givenLabel,
        selfConfidence: row.selfConfidence, normalizedMargin: row.normalizedMargin, score: row.score, flagged: row.flagged,
      });
      if (row.movedFrom !== undefined) s.relabeledFrom = row.movedFrom;
      else delete s.relabeledFrom;
    }
    this.recount(scan);
  }

  /** Puts the sample back as it was before its last move, with the reverse WorkspaceEdit; returns the row restored. */
  private async undoMove(scan: Scan, row: TriageRow): Promise<TriageRow> {
    const stack = scan.moves.get(row.seq);
    const record = stack?.at(-1);
    const ds = scan.dataset;
    if (!record || !ds) throw Object.assign(new Error(`${row.path} has no move to undo`), { code: 'BAD_ARGUMENT' });
    // As it was, judged with the current thresholds (they may have moved since, during a scan).
    const probs = scan.probs.get(row.seq);
    let restored: TriageRow = { ...record.before, ...(probs ? scoresFor(probs, record.before.givenIndex, ds.scoredBy, scan.thresholds) : {}) };
    if (record.kind === 'file') {
      // Back to its old name, or (if that was taken meanwhile) a free name next to it: still never overwriting.
      const dir = path.dirname(record.from);
      const back = path.join(dir, freeName(path.basename(record.from), (n) => fs.existsSync(path.join(dir, n))));
      const edit = new vscode.WorkspaceEdit();
      edit.renameFile(vscode.Uri.file(record.to), vscode.Uri.file(back), { overwrite: false, ignoreIfExists: false });
      if (!(await vscode.workspace.applyEdit(edit))) {
        throw Object.assign(new Error(`could not move ${row.path} back to ${path.relative(ds.root, back)}`), { code: 'MOVE_FAILED' });
      }
      const rel = path.relative(ds.root, back).split(path.sep).join('/');
      restored = { ...restored, path: rel, ...this.imageOf(back) };
    } else {
      await this.rewriteLabel(ds, row.path, (i) => record.originals[i], record.originals.length);
    }
    stack?.pop();
    this.setRow(scan, row, restored);
    this.s.log.line(`undid the move of ${record.before.path} (now ${restored.path}, given "${restored.givenLabel}")`);
    return restored;
  }

  /** Every class's probability for a sample, by label index (a prediction of all classes; the row has the top 5). */
  private async probabilitiesOf(scan: Scan, row: TriageRow): Promise<Float32Array> {
    const kept = scan.probs.get(row.seq);
    if (kept) return kept;
    const n = scan.dataset?.labels.length ?? 0;
    const r = await this.s.engine.predict(
      { model: this.modelRef, image: { path: this.sampleFileOf(scan, row.path), maxPixels: this.config.get<number>('maxImagePixels') }, topK: Math.max(1, n) },
      { supersedeKey: `${this.key}:probabilities` },
    );
    return probabilityVector(r.predictions, n);
  }

  /** Folder dataset: `<root>/<class folder>/<name>` through a WorkspaceEdit; returns the new relative path and both files. */
  private async moveFile(ds: ScanDatasetInfo, row: TriageRow, target: number): Promise<{ relPath: string; from: string; to: string }> {
    const root = ds.root;
    const folders = fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    const folder = classFolderFor(folders, ds.labels, target);
    const dir = path.join(root, folder);
    const src = path.join(root, ...row.path.split('/'));
    const name = freeName(path.basename(src), (n) => fs.existsSync(path.join(dir, n)));
    const dst = path.join(dir, name);
    if (!fs.existsSync(dir)) await vscode.workspace.fs.createDirectory(vscode.Uri.file(dir));
    const edit = new vscode.WorkspaceEdit();
    edit.renameFile(vscode.Uri.file(src), vscode.Uri.file(dst), { overwrite: false, ignoreIfExists: false });
    if (!(await vscode.workspace.applyEdit(edit, { isRefactoring: false }))) {
      throw Object.assign(new Error(`could not move ${row.path} to ${folder}/${name}`), { code: 'MOVE_FAILED', hint: 'see whether the file is still there and the folder is writable' });
    }
    return { relPath: path.relative(root, dst).split(path.sep).join('/'), from: src, to: dst };
  }

  /**
   * Label-file dataset: the label of every row naming the sample is replaced (the i-th such row by `text(i)`)
   * through a WorkspaceEdit, then saved unless the file had unsaved changes. Returns the texts replaced (for undo).
   * `expect`: the number of rows an undo expects to find.
   */
  private async rewriteLabel(ds: ScanDatasetInfo, relPath: string, text: (i: number) => string, expect?: number): Promise<string[]> {
    const uri = vscode.Uri.file(ds.source);
    const doc = await vscode.workspace.openTextDocument(uri);
    const wasDirty = doc.isDirty;
    const content = doc.getText();
    const isSample = (written: string) => namesSample(ds.root, written, relPath);
    let edits: TextEdit[];
    try {
      // The label given here is a placeholder: each edit's text is set below.
      edits = ds.kind === 'json' ? jsonLabelEdits(content, isSample, '') : csvLabelEdits(content, isSample, '');
    } catch (e) {
      throw Object.assign(new Error(`${path.basename(ds.source)} is no longer valid JSON (${(e as Error).message})`), { code: 'BAD_ARGUMENT', hint: 'fix the file, then rescan' });
    }
    if (edits.length === 0 || (expect !== undefined && edits.length !== expect)) {
      throw Object.assign(new Error(`${path.basename(ds.source)} no longer has the row${expect && expect > 1 ? 's' : ''} of ${relPath} it had`), { code: 'BAD_ARGUMENT', hint: 'edit the file by hand, then rescan' });
    }
    const originals = edits.map((e) => content.slice(e.start, e.end));
    const edit = new vscode.WorkspaceEdit();
    edits.forEach((e, i) => {
      const label = text(i);
      // New labels are quoted for their format; restored originals go back verbatim.
      const replacement = expect !== undefined ? label : labelText(ds.kind === 'json' ? 'json' : 'csv', label);
      edit.replace(uri, new vscode.Range(doc.positionAt(e.start), doc.positionAt(e.end)), replacement);
    });
    if (!(await vscode.workspace.applyEdit(edit))) throw Object.assign(new Error(`could not edit ${path.basename(ds.source)}`), { code: 'EDIT_FAILED' });
    // Saved, so that a rescan reads the new label; Ctrl+Z in the file's editor undoes it too.
    if (!wasDirty) await doc.save();
    return originals;
  }

  private async save(requestId: number, format: 'csv' | 'json'): Promise<void> {
    const report = this.scan?.report;
    if (!report) throw Object.assign(new Error('the scan has not finished yet'), { code: 'BAD_ARGUMENT', hint: 'wait for the scan, or cancel it to save what it computed' });
    const base = path.basename(this.source).replace(/\.(csv|json)$/i, '');
    const target = await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.file(path.join(rootOf(this.source), `${base}.mislabeled.${format}`)),
      filters: format === 'csv' ? { CSV: ['csv'] } : { JSON: ['json'] },
      title: `Save the scan report as ${format.toUpperCase()}`,
    });
    if (!target) throw Object.assign(new Error('the report was not saved'), { name: 'Cancelled', code: 'CANCELLED' });
    const text = format === 'csv' ? reportToCsv(report) : JSON.stringify(report, null, 2) + '\n';
    await vscode.workspace.fs.writeFile(target, Buffer.from(text));
    this.s.log.line(`saved the scan report ${target.fsPath}`);
    this.post({ type: 'report/didSave', requestId, path: target.fsPath });
  }

  dispose(): void {
    // Late replies (a map, a scan's end) must not reach a disposed webview.
    this.ready = false;
    this.scan?.abort.abort();
    this.scan = undefined;
    for (const d of this.disposables) d.dispose();
    this.releaseModel();
  }
}
