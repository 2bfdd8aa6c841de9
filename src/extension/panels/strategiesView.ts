/**
 * From the engine's StrategiesReport (engine/analysis/types.ts) to what the strategies webview draws
 * (shared/strategies.ts StrategiesView). Pure: no `vscode`, so it is tested in plain Node; the panel passes in how a
 * file becomes a webview URI.
 *
 * What travels: per class its average map and image, hints and clusters; per cluster its average map, hints,
 * distances and the members nearest its centre (with their labels, probability and image URI). What does not: the
 * record of every member (a class of 10,000 images would send 10,000 records nobody sees) and absolute paths other
 * than the dataset's (the view names members by their dataset-relative path).
 */
import type { ClassStrategies, ShortcutHints, StrategiesReport, StrategyMember } from '../engine/analysis/types';
import type { StrategiesView, StrategyClassView, StrategyHints, StrategyMemberView } from '../../shared/strategies';

/** Failures listed in the view at most (the count is always exact). */
export const MAX_VIEW_FAILURES = 200;

/** Image files a webview shows itself; others (DICOM, TIFF, no extension) get an empty URI and a placeholder. */
const BROWSER_IMAGE = /\.(png|jpe?g|webp|gif|bmp)$/i;

function hints(h: ShortcutHints): StrategyHints {
  const out: StrategyHints = {
    border: { share: h.border.share, uniform: h.border.uniform, rule: h.border.rule },
    corner: { share: h.corner.share, uniform: h.corner.uniform, corner: h.corner.corner, rule: h.corner.rule },
  };
  if (h.outsideBox) out.outsideBox = { share: h.outsideBox.share, uniform: h.outsideBox.uniform, images: h.outsideBox.images, rule: h.outsideBox.rule };
  if (h.intervention) {
    const i = h.intervention;
    out.intervention = { hotDrop: i.hotDrop, controlDrop: i.controlDrop, ratio: i.ratio, baseline: i.baseline, images: i.images, rule: i.rule };
  }
  return out;
}

/** The other cluster nearest this one, by id (the report's `nearestOther` holds that distance). */
function nearestOf(distances: readonly { cluster: number; distance: number }[]): { nearestOther?: number } {
  let best: { cluster: number; distance: number } | undefined;
  for (const d of distances) if (!best || d.distance < best.distance) best = d;
  return best ? { nearestOther: best.cluster } : {};
}

function classView(c: ClassStrategies, uriOf: (file: string) => string): StrategyClassView {
  const byRel = new Map<string, StrategyMember>();
  for (const m of c.members) byRel.set(m.relPath, m);
  const member = (n: { path: string; relPath: string; distance: number }): StrategyMemberView => {
    const m = byRel.get(n.relPath);
    return {
      relPath: n.relPath,
      imageUri: BROWSER_IMAGE.test(n.path) ? uriOf(n.path) : '',
      distance: n.distance,
      givenLabel: m?.givenLabel ?? '',
      predictedLabel: m?.predictedLabel ?? '',
      probability: m?.probability ?? Number.NaN,
    };
  };
  return {
    classIndex: c.classIndex,
    label: c.label,
    count: c.count,
    averageMap: c.averageMap,
    averageImage: c.averageImage,
    clusterChoice: {
      // k read off the graph's connected components is shown as such (the engine files it under its spectral rule).
      by: c.clusterChoice.by === 'eigengap' && c.clusterChoice.components !== undefined ? 'components' : c.clusterChoice.by,
      k: c.clusterChoice.k,
      neighbours: c.clusterChoice.neighbours,
      ...(c.clusterChoice.eigengap !== undefined ? { eigengap: c.clusterChoice.eigengap } : {}),
    },
    clusters: c.clusters.map((k) => ({
      id: k.id,
      size: k.size,
      fraction: k.fraction,
      averageMap: k.averageMap,
      nearest: k.nearest.map(member),
      distances: k.distances.map((d) => ({ cluster: d.cluster, distance: d.distance })),
      ...nearestOf(k.distances),
      hints: hints(k.hints),
    })),
    hints: hints(c.hints),
  };
}

export function toStrategiesView(report: StrategiesReport, uriOf: (file: string) => string): StrategiesView {
  return {
    modelName: report.modelName,
    method: report.method,
    layer: report.layer,
    counts: { ...report.counts },
    cancelled: report.cancelled,
    seconds: report.seconds,
    ...(report.boxes ? { boxes: { source: report.boxes.source, format: report.boxes.format, images: report.boxes.images } } : {}),
    rules: { ...report.rules },
    classes: report.classes.map((c) => classView(c, uriOf)),
    failures: report.failures.slice(0, MAX_VIEW_FAILURES).map((f) => ({ relPath: f.relPath, error: f.error })),
  };
}

/**
 * The file of a member the webview names (dataset-relative path) in a class of the report, or undefined: the host
 * opens only images the analysis listed, never a path the webview made up.
 */
export function memberFile(report: StrategiesReport, classIndex: number, relPath: string): string | undefined {
  const c = report.classes.find((x) => x.classIndex === classIndex);
  return c?.members.find((m) => m.relPath === relPath)?.path;
}
