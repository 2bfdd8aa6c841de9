/**
 * Label-quality scores and confident-learning flags (Northcutt, Jiang and Chuang 2021, "Confident
 * Learning: Estimating Uncertainty in Dataset Labels", JAIR, https://arxiv.org/abs/1911.00068).
 *
 * For a sample with given label y and predicted probabilities p (softmax of the model's logits):
 *   self-confidence     s = p_y                                    (in [0, 1])
 *   normalized margin   m = p_y − max_{j≠y} p_j                    (in [−1, 1])
 *   entropy             H = −Σ_j p_j log p_j
 * Lower s or m = the model doubts the label more; samples are ranked by the chosen score, ascending.
 *
 * Confident learning: per class j, the threshold t_j is the average self-confidence of the samples given
 * label j, t_j = mean_{x: y(x)=j} p_j(x). A sample's "confident" classes are those with p_j ≥ t_j; among
 * them the argmax k* = argmax_{j: p_j ≥ t_j} p_j is the class confident learning assigns it to. The sample is
 * flagged as a likely label issue when k* exists and k* ≠ y (its probability for another class exceeds that
 * class's average self-confidence and that class is the argmax of those). Classes with no given samples
 * get threshold +∞ (nothing is confidently assigned to a class the data never uses… except where every
 * threshold is +∞, which cannot happen with at least one sample).
 *
 * One departure from the paper: a threshold is capped at THRESHOLD_CAP = 0.95,
 *   t_j = min(mean_{x: y(x)=j} p_j(x), 0.95).
 * With an accurate model and a small class, the mean self-confidence saturates (the 8 crosses of samples/
 * average 0.996 with the demo model), and about half of the class's own correctly labelled members fall below
 * it: a "star" that the model calls "cross" with 99.5% was then not confidently a cross, and went unflagged.
 * A probability of 0.95 is confident by any measure; below the cap the paper's rule is unchanged, so
 * less confident classes keep their own, lower thresholds. (cleanlab only bounds thresholds from below.)
 */

export type ScoreKind = 'self_confidence' | 'normalized_margin';
export const SCORE_KINDS: readonly ScoreKind[] = ['self_confidence', 'normalized_margin'];

export interface ScoredInput {
  givenIndex: number;
  /** Probabilities over the classes (labelOffset already removed), summing to ~1. */
  probs: Float32Array;
}

export function selfConfidence(probs: Float32Array, given: number): number {
  return probs[given];
}

export function normalizedMargin(probs: Float32Array, given: number): number {
  let other = 0;
  for (let j = 0; j < probs.length; j++) if (j !== given && probs[j] > other) other = probs[j];
  return probs[given] - other;
}

export function entropy(probs: Float32Array): number {
  let h = 0;
  for (const p of probs) if (p > 0) h -= p * Math.log(p);
  return h;
}

export function score(kind: ScoreKind, probs: Float32Array, given: number): number {
  return kind === 'self_confidence' ? selfConfidence(probs, given) : normalizedMargin(probs, given);
}

/** Upper bound of a confident-learning threshold (see the header). */
export const THRESHOLD_CAP = 0.95;

/** t_j from the sum and the count of the self-confidences of the samples given label j. */
export function classThreshold(sum: number, count: number): number {
  return count > 0 ? Math.min(sum / count, THRESHOLD_CAP) : Infinity;
}

/** Per-class thresholds t_j: average self-confidence of the samples given label j, capped (+∞ where none). */
export function classThresholds(samples: readonly ScoredInput[], numClasses: number): Float64Array {
  const sum = new Float64Array(numClasses);
  const n = new Float64Array(numClasses);
  for (const s of samples) {
    sum[s.givenIndex] += s.probs[s.givenIndex];
    n[s.givenIndex] += 1;
  }
  const t = new Float64Array(numClasses);
  for (let j = 0; j < numClasses; j++) t[j] = classThreshold(sum[j], n[j]);
  return t;
}

/** The class confident learning assigns a sample to (argmax over classes above threshold), or -1. */
export function confidentClass(probs: Float32Array, thresholds: Float64Array): number {
  let best = -1;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] >= thresholds[j] && (best < 0 || probs[j] > probs[best])) best = j;
  }
  return best;
}

export function isFlagged(s: ScoredInput, thresholds: Float64Array): boolean {
  const k = confidentClass(s.probs, thresholds);
  return k >= 0 && k !== s.givenIndex;
}

/** Indices of `samples` in rank order: most doubtful first (ascending score, ties by index). */
export function rankOrder(samples: readonly ScoredInput[], kind: ScoreKind): number[] {
  const scores = samples.map((s) => score(kind, s.probs, s.givenIndex));
  return samples.map((_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
}
