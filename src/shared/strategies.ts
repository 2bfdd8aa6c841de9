/**
 * What the "Model Strategies" view shows (issue #14): the engine's StrategiesReport
 * (src/extension/engine/analysis/types.ts) as the webview receives it. The webview cannot import the engine, so
 * the shapes it reads are declared here, pure, as shared/dicom.ts does for DICOM; the host builds a view from a
 * report (panels/strategiesPanel.ts `toView`) adding what only the host knows (each member's webview image URI)
 * and leaving out what the view does not draw (every member's record: only the members nearest each cluster's
 * centre travel).
 *
 * Maps are row-major Float32Arrays with explicit width and height (values in [0, 1] after the class-wise
 * normalisation the engine applies), images row-major RGB bytes: typed arrays, never nested number arrays.
 */

/** A map on the common grid: row-major, `width * height` values. */
export interface StrategyMapGrid {
  width: number;
  height: number;
  values: Float32Array;
}

/** A small RGB image (row-major, 3 bytes per pixel): the class's average image, drawn under its maps. */
export interface StrategyRgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The share of a map's heat in a region, what a map without preference would give, and the region's rule. */
export interface StrategyShareHint {
  share: number;
  uniform: number;
  rule: string;
}

export interface StrategyCornerHint extends StrategyShareHint {
  corner: 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right';
}

export interface StrategyOutsideBoxHint extends StrategyShareHint {
  /** Members that had an object box. */
  images: number;
}

/** Blurring the cluster's hot region against blurring a region of the same size elsewhere (the control). */
export interface StrategyInterventionHint {
  /** Mean drop of the explained class's probability with the hot region blurred. */
  hotDrop: number;
  /** Mean drop with the control region blurred. */
  controlDrop: number;
  /** hotDrop / max(controlDrop, 0.01). */
  ratio: number;
  /** Mean probability before any blur. */
  baseline: number;
  images: number;
  rule: string;
}

export interface StrategyHints {
  border: StrategyShareHint;
  corner: StrategyCornerHint;
  outsideBox?: StrategyOutsideBoxHint;
  intervention?: StrategyInterventionHint;
}

/** A member of a cluster as a thumbnail: its dataset-relative path (its identity) and what its tooltip says. */
export interface StrategyMemberView {
  relPath: string;
  /** Webview URI of the image ('' where the webview cannot show the file: DICOM, TIFF; a placeholder is drawn). */
  imageUri: string;
  /** Distance of its map from the cluster's mean map (unit-length maps). */
  distance: number;
  givenLabel: string;
  predictedLabel: string;
  /** The model's probability of the explained class. */
  probability: number;
}

export interface StrategyClusterView {
  /** Index within the class (0 = largest). */
  id: number;
  size: number;
  /** size / the class's analysed images. */
  fraction: number;
  averageMap: StrategyMapGrid;
  /** The members nearest the centre, nearest first. */
  nearest: StrategyMemberView[];
  /** Distance of this cluster's average map from each other cluster's (0 identical, sqrt(2) disjoint). */
  distances: { cluster: number; distance: number }[];
  nearestOther?: number;
  hints: StrategyHints;
}

export interface StrategyClassView {
  classIndex: number;
  label: string;
  /** Images analysed in this class. */
  count: number;
  averageMap: StrategyMapGrid;
  averageImage: StrategyRgbImage;
  /**
   * How k was chosen: the eigengap; 'components', the k-nearest-neighbour graph fell apart into k parts; 'given',
   * the user's k; 'too few images' to cluster.
   */
  clusterChoice: { by: 'eigengap' | 'components' | 'given' | 'too few images'; k: number; eigengap?: number; neighbours: number };
  /** Largest first. */
  clusters: StrategyClusterView[];
  /** The class's hints over all of its maps. */
  hints: StrategyHints;
}

export interface StrategiesView {
  modelName: string;
  method: string;
  layer: string;
  counts: { images: number; analysed: number; failed: number; fromCache: number };
  cancelled: boolean;
  seconds: number;
  /** Where object boxes came from (the "outside the box" hint), when there were any. */
  boxes?: { source: string; format: string; images: number };
  /** The rules every hint applies, once. */
  rules: { border: string; corner: string; outsideBox: string; intervention: string; clustering: string };
  classes: StrategyClassView[];
  /** Images that could not be analysed (at most a few hundred travel). */
  failures: { relPath: string; error: string }[];
}

/** How many clusters: the eigengap's choice, or a given k. */
export type StrategyClusterCount = 'auto' | number;

/** The k a user may give (the clusters picker); 'auto' besides. */
export const MAX_STRATEGY_CLUSTERS = 8;

export function isClusterCount(x: unknown): x is StrategyClusterCount {
  return x === 'auto' || (typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= MAX_STRATEGY_CLUSTERS);
}

/**
 * When a cluster looks like a shortcut, for the card's warning mark. The numbers only: the rules are the engine's.
 * Where the heat sits decides: the hottest corner box (a 25% x 25% box, 6.25% of the image) holding at least a
 * quarter of the heat, four times a flat map's share; the border band holding half of it; or most of it outside
 * the object box. On the committed demo models the corner bar separates: the shortcut model's badge cluster of
 * star holds 46% of its heat in the badge's corner at relu5 (56% at relu4), the clean model's clusters at most
 * 15% (README, "Finding a shortcut"). The blur intervention then says how much the class rests on that region
 * (a drop at least 3 times the control's), so it is listed with them; alone it proves nothing (blurring the
 * object itself drops the probability too: that is the model looking at the right thing).
 */
export const HINT_THRESHOLDS = { border: 0.5, corner: 0.25, outsideBox: 0.6, interventionRatio: 3, interventionDrop: 0.05 } as const;

export type HintId = 'border' | 'corner' | 'outsideBox' | 'intervention';

export function suspiciousHints(h: StrategyHints): HintId[] {
  const out: HintId[] = [];
  if (h.border.share >= HINT_THRESHOLDS.border) out.push('border');
  if (h.corner.share >= HINT_THRESHOLDS.corner) out.push('corner');
  if (h.outsideBox && h.outsideBox.images > 0 && h.outsideBox.share >= HINT_THRESHOLDS.outsideBox) out.push('outsideBox');
  const i = h.intervention;
  if (out.length && i && i.images > 0 && i.ratio >= HINT_THRESHOLDS.interventionRatio && i.hotDrop >= HINT_THRESHOLDS.interventionDrop) out.push('intervention');
  return out;
}
