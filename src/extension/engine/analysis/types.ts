/**
 * Types of the dataset map analysis ("Model Strategies", issue #14): SpRAy (Lapuschkin et al., "Unmasking
 * Clever Hans predictors and assessing what machines really learn", Nature Communications 10, 1096, 2019) over
 * CAM maps. For every image of a labelled dataset (or of the chosen classes) the map of one method at one layer
 * for the explained class, resized to one common grid; per class the average map and image; spectral clusters
 * of the maps (each a "strategy" of the model); per cluster its average map, the members nearest its centre,
 * how far it is from the class's other clusters, and shortcut hints, each a measured number with its rule.
 *
 * This file imports nothing, so that it can be shared as is with code that cannot import the engine (the host
 * glue imports it; a webview would need a copy or a move to src/shared). Maps and images are typed arrays with
 * explicit width and height (row-major; maps one value per cell, images RGB bytes), as everywhere in CAM Lens;
 * the CLI's JSON writes them as plain number arrays.
 */

/** A map on the common grid: row-major, `width * height` values. */
export interface MapGrid {
  width: number;
  height: number;
  values: Float32Array;
}

/** A small RGB image (row-major, 3 bytes per pixel), for the view's background under an average map. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** How images are grouped into classes: by the label the dataset gives them, or by the model's top-1. */
export type GroupBy = 'given' | 'predicted';

/** Which class each map explains: the class of the image's group (default), or always the image's top-1. */
export type ExplainTarget = 'group' | 'predicted';

export interface StrategiesRequest {
  /** The model file (model.json, .onnx, .keras, .h5), as loadModel takes it. */
  model: string;
  /** A labelled folder (one subfolder per class) or a CSV/JSON label file, as engine/scan/dataset.ts reads. */
  data: string;
  /** The classes to analyse, by label or label index; absent or empty: every class with at least one image. */
  classes?: (string | number)[];
  /** Default 'given'. */
  groupBy?: GroupBy;
  /** Default 'group'. */
  explain?: ExplainTarget;
  /** CAM method id (engine/cam/registry.ts); default 'gradcam'. */
  method?: string;
  /** Target layer; default the model's recommended layer. */
  layer?: string;
  /** Method options (as ExplainRequest.options), e.g. Score-CAM's channel budget. */
  methodOptions?: Record<string, unknown>;
  /** Clusters per class: a number (capped at the class's image count) or 'auto' (the eigengap). Default 'auto'. */
  clusters?: number | 'auto';
  /** Largest number of clusters 'auto' considers. Default 8. */
  maxClusters?: number;
  /** Side of the common map grid. Default 32 (32 x 32). */
  mapSize?: number;
  /** Neighbours per map in the affinity graph; default about sqrt(n), within [2, 16]. */
  neighbours?: number;
  /** Seed of the k-means initialisation (deterministic for a given seed). Default 1. */
  seed?: number;
  /**
   * Object boxes for the "outside the box" hint: a boxes.json (as samples/boxes.json), a COCO-style JSON
   * (images + annotations), or a folder of Pascal VOC XML files. Default: `boxes.json` in the data folder where
   * there is one.
   */
  boxes?: string;
  /** Run the blur intervention (a forward pass per member and region). Default true. */
  intervention?: boolean;
  /** Members listed per cluster as "nearest the centre". Default 6. */
  nearest?: number;
}

/** Progress of a strategies run: maps first (the long part), then clustering and the interventions. */
export interface StrategiesProgress {
  phase: 'maps' | 'clusters' | 'interventions';
  done: number;
  total: number;
  /** Maps per second so far (phase 'maps'); 0 in the other phases. */
  mapsPerSecond: number;
  secondsLeft: number;
  failed: number;
}

/** One analysed image. */
export interface StrategyMember {
  path: string;
  /** Relative to the dataset root or label file. */
  relPath: string;
  givenIndex: number;
  givenLabel: string;
  predictedIndex: number;
  predictedLabel: string;
  /** The model's probability of the predicted class. */
  predictedProbability: number;
  /** The class the map explains, and the model's probability of it. */
  explainedIndex: number;
  probability: number;
  /** Index into ClassStrategies.clusters. */
  cluster: number;
  /** Euclidean distance of the member's map (unit length) from its cluster's mean map (of unit-length maps). */
  distance: number;
}

/** The share of the map's heat in a region, and the rule that defines the region. */
export interface ShareHint {
  /** In [0, 1]: sum of the map inside the region / sum of the whole map (both on the common grid). */
  share: number;
  /** What a map with no preference would give (the region's share of the grid's area), for comparison. */
  uniform: number;
  rule: string;
}

export type Corner = 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right';

export interface CornerHint extends ShareHint {
  /** The hottest corner (the one with the largest share). */
  corner: Corner;
}

export interface OutsideBoxHint {
  /** Mean over the members with a box of the share of their map outside their object box. */
  share: number;
  /** Mean share of the grid's area outside the boxes (what a map with no preference would give). */
  uniform: number;
  /** Members that had a box. */
  images: number;
  rule: string;
}

/**
 * The intervention: each member's explained-class probability with the cluster's hot region blurred, and with
 * a region of the same size blurred elsewhere (the control), as mean drops from the unblurred probability.
 */
export interface InterventionHint {
  /** Mean over members of p(original) - p(hot region blurred). */
  hotDrop: number;
  /** Mean over members of p(original) - p(control region blurred). */
  controlDrop: number;
  /** hotDrop / max(controlDrop, 0.01): how many times the control's drop (a floor avoids dividing by ~0). */
  ratio: number;
  /** Mean probability of the explained class before any blur. */
  baseline: number;
  /** The hot and control regions, in pixels of the model input ([x0, y0, x1, y1], inclusive). */
  hotRegion: [number, number, number, number];
  controlRegion: [number, number, number, number];
  images: number;
  rule: string;
}

export interface ShortcutHints {
  border: ShareHint;
  corner: CornerHint;
  outsideBox?: OutsideBoxHint;
  intervention?: InterventionHint;
}

export interface StrategyCluster {
  /** Index within the class (0 = largest cluster). */
  id: number;
  size: number;
  /** size / the class's analysed images. */
  fraction: number;
  averageMap: MapGrid;
  /** Indices into ClassStrategies.members, nearest the centre first. */
  members: number[];
  /** The members nearest the centre (at most StrategiesRequest.nearest), nearest first. */
  nearest: { path: string; relPath: string; distance: number }[];
  /**
   * Euclidean distance of this cluster's average map from each other cluster's of the class, both normalised
   * to unit length (0 identical, sqrt(2) disjoint), by cluster id; `nearestOther` the smallest (absent alone).
   */
  distances: { cluster: number; distance: number }[];
  nearestOther?: number;
  hints: ShortcutHints;
}

export interface ClassStrategies {
  classIndex: number;
  label: string;
  /** Images analysed (maps computed) in this class. */
  count: number;
  averageMap: MapGrid;
  averageImage: RgbImage;
  /** How the number of clusters was chosen. */
  clusterChoice: {
    /** 'eigengap' covers both rules of the spectrum: k connected components where the k-NN graph falls apart
     *  (then `components` is set), else the largest step of the eigenvalues. */
    by: 'eigengap' | 'given' | 'too few images';
    /** Set when k is the number of connected components of the graph (with over 300 maps only these k zero
     *  eigenvalues are then listed: the rest of the spectrum is not computed). */
    components?: number;
    k: number;
    /** Smallest eigenvalues of the normalised Laplacian, ascending (at most maxClusters + 1). */
    eigenvalues: number[];
    /** The gap lambda_{k+1} - lambda_k that picked k (eigengap only). */
    eigengap?: number;
    neighbours: number;
  };
  /** Largest first. */
  clusters: StrategyCluster[];
  members: StrategyMember[];
  /** The class's hints over all of its maps. */
  hints: ShortcutHints;
}

export interface StrategiesReport {
  version: 1;
  model: string;
  modelName: string;
  data: string;
  method: string;
  layer: string;
  groupBy: GroupBy;
  explain: ExplainTarget;
  mapSize: { width: number; height: number };
  /** Where the boxes came from, and what format. */
  boxes?: { source: string; format: 'boxes.json' | 'coco' | 'voc'; images: number };
  counts: { images: number; analysed: number; failed: number; fromCache: number };
  cancelled: boolean;
  seconds: number;
  /** The rules every hint applies, once (each hint repeats its own). */
  rules: { border: string; corner: string; outsideBox: string; intervention: string; clustering: string };
  classes: ClassStrategies[];
  failures: { path: string; relPath: string; error: string }[];
}
