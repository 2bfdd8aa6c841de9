/**
 * The scan report: every sample in rank order (most doubtful first) with its scores and flag, as JSON
 * `{ model, data, counts, samples }` (PRODUCT.md's contract) or CSV, plus the "label is correct" marks a
 * reviewer leaves in `<dataset>/.cam-lens/reviewed.json`, which later scans hide.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Dataset } from './dataset';
import type { ScanSummary, SampleResult } from './scan';
import { classThresholds, isFlagged, rankOrder, score, type ScoreKind } from './ranking';

export interface ReportSample {
  path: string;
  relPath: string;
  givenLabel: string;
  predictedLabel: string;
  /** Top-5 class probabilities, label → probability, most likely first. */
  probabilities: Record<string, number>;
  selfConfidence: number;
  normalizedMargin: number;
  entropy: number;
  flagged: boolean;
  score: number;
  rank: number;
}

export interface ScanReport {
  model: string;
  data: string;
  scoredBy: ScoreKind;
  counts: {
    images: number;
    scanned: number;
    failed: number;
    flagged: number;
    reviewedHidden: number;
    nonImageFiles: number;
    unmatchedImages: number;
    missingFiles: number;
  };
  cancelled: boolean;
  unmatchedClasses: { name: string; images: number }[];
  failures: { path: string; error: string }[];
  /** Confident-learning threshold per class label (average self-confidence capped at 0.95, see ranking.ts; null where no sample). */
  thresholds: Record<string, number | null>;
  samples: ReportSample[];
}

export interface Reviewed {
  version: 1;
  /** relPath → the given label it was confirmed with. */
  reviewed: Record<string, { givenLabel: string; at: string }>;
}

export function reviewedFile(root: string): string {
  return path.join(root, '.cam-lens', 'reviewed.json');
}

export function readReviewed(root: string): Reviewed {
  const f = reviewedFile(root);
  try {
    const j = JSON.parse(fs.readFileSync(f, 'utf8')) as Reviewed;
    if (j && j.version === 1 && j.reviewed && typeof j.reviewed === 'object') return j;
  } catch {
    // absent or unreadable: nothing reviewed yet
  }
  return { version: 1, reviewed: {} };
}

export function markReviewed(root: string, relPath: string, givenLabel: string): Reviewed {
  const r = readReviewed(root);
  r.reviewed[relPath] = { givenLabel, at: new Date().toISOString() };
  fs.mkdirSync(path.dirname(reviewedFile(root)), { recursive: true });
  fs.writeFileSync(reviewedFile(root), JSON.stringify(r, null, 2) + '\n');
  return r;
}

function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}

export function buildReport(modelPath: string, labels: string[], dataset: Dataset, scan: ScanSummary, kind: ScoreKind = 'self_confidence', reviewed?: Reviewed): ScanReport {
  const all = scan.results;
  const thresholds = classThresholds(all, labels.length);
  const isHidden = (r: SampleResult) => reviewed?.reviewed[r.relPath]?.givenLabel === r.givenLabel;
  const order = rankOrder(all, kind);
  const samples: ReportSample[] = [];
  let hidden = 0;
  let flaggedCount = 0;
  for (const i of order) {
    const r = all[i];
    const flagged = isFlagged(r, thresholds);
    if (isHidden(r)) {
      hidden++;
      continue;
    }
    if (flagged) flaggedCount++;
    samples.push({
      path: r.path,
      relPath: r.relPath,
      givenLabel: r.givenLabel,
      predictedLabel: r.predictedLabel,
      probabilities: Object.fromEntries(r.top.map((t) => [t.label, round(t.probability)])),
      selfConfidence: round(r.selfConfidence),
      normalizedMargin: round(r.normalizedMargin),
      entropy: round(r.entropy),
      flagged,
      score: round(score(kind, r.probs, r.givenIndex)),
      rank: samples.length + 1,
    });
  }
  return {
    model: modelPath,
    data: dataset.source,
    scoredBy: kind,
    counts: {
      images: dataset.counts.images,
      scanned: all.length,
      failed: scan.failures.length,
      flagged: flaggedCount,
      reviewedHidden: hidden,
      nonImageFiles: dataset.counts.nonImageFiles,
      unmatchedImages: dataset.counts.unmatchedImages,
      missingFiles: dataset.counts.missingFiles,
    },
    cancelled: scan.cancelled,
    unmatchedClasses: dataset.unmatchedClasses,
    failures: scan.failures.map((f) => ({ path: f.path, error: f.error })),
    thresholds: Object.fromEntries(labels.map((l, j) => [l, Number.isFinite(thresholds[j]) ? round(thresholds[j]) : null])),
    samples,
  };
}

function csvCell(v: string | number | boolean): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function reportToCsv(report: ScanReport): string {
  const head = ['rank', 'path', 'givenLabel', 'predictedLabel', 'selfConfidence', 'normalizedMargin', 'entropy', 'flagged', 'top1', 'p1', 'top2', 'p2', 'top3', 'p3', 'top4', 'p4', 'top5', 'p5'];
  const lines = [head.join(',')];
  for (const s of report.samples) {
    const top = Object.entries(s.probabilities);
    const cells: (string | number | boolean)[] = [s.rank, s.relPath, s.givenLabel, s.predictedLabel, s.selfConfidence, s.normalizedMargin, s.entropy, s.flagged];
    for (let i = 0; i < 5; i++) cells.push(top[i]?.[0] ?? '', top[i]?.[1] ?? '');
    lines.push(cells.map(csvCell).join(','));
  }
  return lines.join('\n') + '\n';
}
