/**
 * Shortcut hints: where on the image a map's heat sits, as numbers with their rules, and the regions and blur
 * of the intervention check. All shares are measured on the common map grid (width x height cells); a cell
 * belongs to a region when its centre ((x + 0.5) / width, (y + 0.5) / height) lies in it, and
 *
 *   share(region) = sum of the map over the region's cells / sum of the map over all cells.
 *
 * A cluster's shares are those of its average map, the mean of its members' maps each scaled to sum 1, so a
 * cluster's share is exactly the mean of its members' shares. `uniform` is what a flat map would give (the
 * region's share of the cells), the baseline to compare with.
 */
import type { Corner, CornerHint, MapGrid, ShareHint } from './types';

export const BORDER_FRACTION = 0.1;
export const CORNER_FRACTION = 0.25;
/** The hot and control regions of the intervention: squares of this fraction of the grid's side (as a corner). */
export const REGION_FRACTION = 0.25;

export const RULES = {
  border: `share of the map's heat in the outer ${BORDER_FRACTION * 100}% of the image (cells whose centre lies within ` +
    `${BORDER_FRACTION * 100}% of the width or height from an edge)`,
  corner: `share of the map's heat in the hottest of the four corner boxes, each ${CORNER_FRACTION * 100}% of the width ` +
    `by ${CORNER_FRACTION * 100}% of the height in a corner of the image (cells whose centre lies in the box)`,
  outsideBox: "share of the map's heat outside the object's box(es) from the annotations, averaged over the members " +
    'that have boxes (cells whose centre lies in no box)',
  intervention: 'mean drop of the explained class probability when the hot region (the square of ' +
    `${REGION_FRACTION * 100}% of the image side holding the most heat of the cluster's average map) is blurred, ` +
    'against blurring the control region (the square of the same size holding the least heat, not overlapping ' +
    'the hot one) on the same members (at most 16, nearest the centre first); blur: three passes of a box blur of ' +
    'radius a quarter of the region side, on the model input, inside the region only',
  clustering: 'spectral clustering as SpRAy (Lapuschkin et al. 2019): maps pooled to at most 16x16 and scaled to unit ' +
    'length; symmetrised k-nearest-neighbour graph with self-tuning Gaussian weights; normalised Laplacian ' +
    'I - D^-1/2 W D^-1/2; k = the number of connected components of the graph where there are several, else the eigengap (the largest step lambda_{k+1} - lambda_k, k <= maxClusters), or given; ' +
    'seeded k-means on the row-normalised spectral embedding',
};

/** Bilinear resize of a row-major map (half-pixel centres, edges clamped), as tfjs resizeBilinear without align corners. */
export function resizeMap(values: Float32Array, w: number, h: number, gw: number, gh: number): Float32Array {
  const out = new Float32Array(gw * gh);
  for (let gy = 0; gy < gh; gy++) {
    const sy = Math.min(h - 1, Math.max(0, ((gy + 0.5) * h) / gh - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(h - 1, y0 + 1);
    const fy = sy - y0;
    for (let gx = 0; gx < gw; gx++) {
      const sx = Math.min(w - 1, Math.max(0, ((gx + 0.5) * w) / gw - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(w - 1, x0 + 1);
      const fx = sx - x0;
      const top = values[y0 * w + x0] * (1 - fx) + values[y0 * w + x1] * fx;
      const bottom = values[y1 * w + x0] * (1 - fx) + values[y1 * w + x1] * fx;
      out[gy * gw + gx] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** The share of heat in the cells where `inside(cx, cy)` holds (cell centres in [0, 1]), and the share of cells. */
export function regionShare(map: MapGrid, inside: (cx: number, cy: number) => boolean): { share: number; uniform: number } {
  const { width: w, height: h, values } = map;
  let total = 0;
  let part = 0;
  let cells = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = Math.max(0, values[y * w + x]);
      total += v;
      if (inside((x + 0.5) / w, (y + 0.5) / h)) {
        part += v;
        cells++;
      }
    }
  }
  return { share: total > 0 ? part / total : 0, uniform: cells / (w * h) };
}

export function borderShare(map: MapGrid): ShareHint {
  const f = BORDER_FRACTION;
  const r = regionShare(map, (cx, cy) => cx < f || cx > 1 - f || cy < f || cy > 1 - f);
  return { ...r, rule: RULES.border };
}

export const CORNERS: readonly Corner[] = ['top-left', 'top-right', 'bottom-left', 'bottom-right'];

export function cornerShares(map: MapGrid): Record<Corner, number> {
  const f = CORNER_FRACTION;
  const out = {} as Record<Corner, number>;
  for (const c of CORNERS) {
    const right = c.endsWith('right');
    const bottom = c.startsWith('bottom');
    out[c] = regionShare(map, (cx, cy) => (right ? cx > 1 - f : cx < f) && (bottom ? cy > 1 - f : cy < f)).share;
  }
  return out;
}

export function cornerShare(map: MapGrid): CornerHint {
  const shares = cornerShares(map);
  let corner: Corner = 'top-left';
  for (const c of CORNERS) if (shares[c] > shares[corner]) corner = c;
  const f = CORNER_FRACTION;
  const uniform = regionShare(map, (cx, cy) => cx < f && cy < f).uniform;
  return { share: shares[corner], uniform, corner, rule: RULES.corner };
}

/** A box in fractions of the image: [x0, x1) x [y0, y1) with 0 <= x0 < x1 <= 1. */
export interface FractionBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export function outsideBoxesShare(map: MapGrid, boxes: readonly FractionBox[]): { share: number; uniform: number } {
  return regionShare(map, (cx, cy) => !boxes.some((b) => cx >= b.x0 && cx < b.x1 && cy >= b.y0 && cy < b.y1));
}

/** Mean of maps each scaled to sum 1 (all-zero maps count as flat), then scaled to a maximum of 1 for display. */
export function averageMap(maps: readonly Float32Array[], width: number, height: number): MapGrid {
  const out = new Float32Array(width * height);
  for (const m of maps) {
    let s = 0;
    for (const v of m) s += Math.max(0, v);
    if (s > 0) for (let i = 0; i < out.length; i++) out[i] += Math.max(0, m[i]) / s;
    else for (let i = 0; i < out.length; i++) out[i] += 1 / out.length;
  }
  let max = 0;
  for (const v of out) max = Math.max(max, v);
  if (max > 0) for (let i = 0; i < out.length; i++) out[i] /= max;
  return { width, height, values: out };
}

/** A square window of `side` cells at (x, y) (top-left cell) on the grid. */
export interface Window {
  x: number;
  y: number;
  side: number;
}

function windowSums(map: MapGrid, side: number): { x: number; y: number; sum: number }[] {
  const { width: w, height: h, values } = map;
  const out: { x: number; y: number; sum: number }[] = [];
  for (let y = 0; y + side <= h; y++) {
    for (let x = 0; x + side <= w; x++) {
      let s = 0;
      for (let yy = y; yy < y + side; yy++) for (let xx = x; xx < x + side; xx++) s += Math.max(0, values[yy * w + xx]);
      out.push({ x, y, sum: s });
    }
  }
  return out;
}

/**
 * The intervention's regions on the grid: `hot`, the window of REGION_FRACTION of the side with the most heat,
 * and `control`, the one with the least heat among those not overlapping it (any window if none is disjoint).
 * Ties: the first in row-major order.
 */
export function interventionWindows(map: MapGrid): { hot: Window; control: Window } {
  const side = Math.max(1, Math.round(REGION_FRACTION * Math.min(map.width, map.height)));
  const sums = windowSums(map, side);
  let hot = sums[0];
  for (const s of sums) if (s.sum > hot.sum) hot = s;
  const disjoint = sums.filter((s) => s.x >= hot.x + side || s.x + side <= hot.x || s.y >= hot.y + side || s.y + side <= hot.y);
  const pool = disjoint.length ? disjoint : sums;
  let cold = pool[0];
  for (const s of pool) if (s.sum < cold.sum) cold = s;
  return { hot: { x: hot.x, y: hot.y, side }, control: { x: cold.x, y: cold.y, side } };
}

/** A grid window in pixels of a W x H image: [x0, y0, x1, y1], inclusive. */
export function windowToPixels(win: Window, grid: { width: number; height: number }, W: number, H: number): [number, number, number, number] {
  const x0 = Math.floor((win.x * W) / grid.width);
  const y0 = Math.floor((win.y * H) / grid.height);
  const x1 = Math.min(W, Math.ceil(((win.x + win.side) * W) / grid.width)) - 1;
  const y1 = Math.min(H, Math.ceil(((win.y + win.side) * H) / grid.height)) - 1;
  return [x0, y0, x1, y1];
}

/** One box blur pass of radius r along x or y of an H x W x C image (edges clamped). */
function boxPass(src: Float32Array, W: number, H: number, C: number, r: number, alongX: boolean): Float32Array {
  const out = new Float32Array(src.length);
  const len = alongX ? W : H;
  const lines = alongX ? H : W;
  const norm = 1 / (2 * r + 1);
  for (let l = 0; l < lines; l++) {
    for (let c = 0; c < C; c++) {
      const at = (i: number) => {
        const j = Math.min(len - 1, Math.max(0, i));
        return alongX ? src[(l * W + j) * C + c] : src[(j * W + l) * C + c];
      };
      let s = 0;
      for (let i = -r; i <= r; i++) s += at(i);
      for (let i = 0; i < len; i++) {
        const o = alongX ? (l * W + i) * C + c : (i * W + l) * C + c;
        out[o] = s * norm;
        s += at(i + r + 1) - at(i - r);
      }
    }
  }
  return out;
}

/**
 * The input (H x W x C, preprocessed) with the pixel box [x0, y0, x1, y1] (inclusive) replaced by a blurred copy:
 * three passes of a box blur of radius max(2, round(side / 4)) (close to a Gaussian of sigma ~ radius), computed
 * on the whole image so that the region's edge blends with its surroundings. The input is not modified.
 */
export function blurRegion(input: Float32Array, W: number, H: number, C: number, box: [number, number, number, number]): Float32Array {
  const [x0, y0, x1, y1] = box;
  const r = Math.max(2, Math.round(Math.max(x1 - x0 + 1, y1 - y0 + 1) / 4));
  let b = input;
  for (let pass = 0; pass < 3; pass++) b = boxPass(boxPass(b, W, H, C, r, true), W, H, C, r, false);
  const out = Float32Array.from(input);
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) for (let c = 0; c < C; c++) out[(y * W + x) * C + c] = b[(y * W + x) * C + c];
  return out;
}
