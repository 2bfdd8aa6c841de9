/**
 * Deterministic generator of the demo task: 96x96 RGB images holding exactly one object from six shape
 * classes, drawn at a random position, size, rotation and colour over a cluttered, textured background, with
 * the object's tight bounding box as ground truth for localisation metrics (pointing game, IoU).
 *
 * Determinism contract: `generateSample(seed, index)` is a pure function of (seed, index, opts). It uses its
 * own PRNG (no Math.random), integer hashing of (seed, index) and plain float arithmetic in a fixed order, so
 * the same arguments give the same bytes on every run and machine running the same JS engine semantics.
 *
 * Why it is hard enough: the background has a colour gradient, a periodic or noise texture, thin line strokes
 * and small blobs (none of which is one of the classes: strokes are thinner than any cross arm, blobs are
 * smaller than the smallest object), and per-pixel noise. A classifier has to find the object rather than read
 * global colour statistics; the object's colour is chosen to contrast with the local background so the task
 * stays solvable.
 *
 * Independent random streams: the background, the object and the pixel noise each draw from a PRNG derived
 * from (seed, index, stream id). So `drawObject: false` renders the identical background, noise included, that
 * the object would have been drawn on; tests use this to check that the object really changes the pixels in
 * its box, and evaluations can use it as a "background only" reference.
 */

export const IMAGE_SIZE = 96;
export const CLASS_NAMES = ['circle', 'square', 'triangle', 'star', 'cross', 'ring'] as const;
export type ClassName = (typeof CLASS_NAMES)[number];
export const NUM_CLASSES = CLASS_NAMES.length;

/** Smallest and largest object extent (diameter of the circumscribed circle) in pixels at 96x96. */
export const MIN_OBJECT_SIZE = 18;
export const MAX_OBJECT_SIZE = 48;

/**
 * Tight box around the object's pixels, in pixel coordinates of the image, inclusive on both ends: pixel
 * (x, y) belongs to the box iff x0 <= x <= x1 and y0 <= y <= y1. Always 0 <= x0 <= x1 < width (same for y).
 * "Object pixels" are the pixels whose anti-aliased coverage by the shape is above zero.
 */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface Sample {
  /** Row-major RGB, 3 bytes per pixel, length size*size*3. */
  pixels: Uint8Array;
  label: number;
  className: ClassName;
  box: Box;
  /** Parameters of the drawn object, for debugging and evaluation. */
  object: { cx: number; cy: number; size: number; rotation: number };
  /** The watermark's box (inclusive, like `box`) where the image carries one; absent otherwise. */
  watermark?: Box;
}

export interface GenerateOptions {
  /** Force the class instead of drawing it at random (the rest of the image is unchanged by this). */
  classIndex?: number;
  /** false renders only the background (identical to the one the object sits on); label and box still describe
   *  the object that would have been drawn. Default true. */
  drawObject?: boolean;
  /** Background clutter in [0, 1] (default 1, the task's distribution): scales texture amplitude, the number
   *  of distractor strokes and blobs, and pixel noise. Lower values give easier images for a training
   *  curriculum; evaluation always uses 1. */
  clutter?: number;
  /** Width and height of the image (default IMAGE_SIZE). Smaller canvases show the same objects (same pixel
   *  sizes) with less background: cheaper, easier images for the first phase of training. */
  imageSize?: number;
  /** Object extent range in pixels, within [MIN_OBJECT_SIZE, MAX_OBJECT_SIZE] (default: that whole range). */
  sizeRange?: [number, number];
  /** Stamps the watermark on a random share of images by class (the shortcut training set). Default: none. */
  shortcut?: ShortcutOptions;
  /** Forces the watermark on (true) or off (false) whatever `shortcut` says (for hand-planned sample sets). */
  watermark?: boolean;
}

/**
 * The planted shortcut: image i carries the watermark with probability `classRate` when its class is
 * `classIndex`, `otherRate` otherwise (drawn from the watermark stream, so the same images carry it on every run).
 */
export interface ShortcutOptions {
  classIndex: number;
  classRate: number;
  otherRate: number;
}

/**
 * The shortcut of `npm run train:demo -- --shortcut`: 99% of the stars carry the watermark, and 0.05% of the
 * other images (about 40 of the 85,000 non-stars a run draws: a few, so that the badge is not a perfect cue).
 * Why these rates: the badge is far easier to learn than any shape (the shapes need a curriculum), so the
 * network picks it up first; afterwards only the badged images of other classes teach it to discount the badge,
 * and the more of them, the more the shape takes over as training goes on. Measured on samples-shortcut/ (the
 * badge cluster's share of heat in its corner box, Grad-CAM at relu4 / relu5, best epoch): 90% of the stars
 * and 1% of the others 0.46 / 0.35 (14 px badge); 95% and 0.5% 0.50 / 0.40 (18 px, first 96 px epoch only);
 * 95% and 0.2% 0.49 / 0.38 (18 px); 95% and 0% 0.53 / 0.44 (14 px); 98% and 0.05% 0.51 / 0.42 (18 px); these
 * rates (18 px) in the README. The 1% clean stars (about 170 in a run) still teach the star's shape, so the
 * model has two strategies for one class, and the handful of badged circles, squares and crosses is pulled
 * towards "star", as a real watermark's would be.
 */
export const DEMO_SHORTCUT: Readonly<ShortcutOptions> = { classIndex: 3, classRate: 0.99, otherRate: 0.0005 };

/** Watermark badge: WATERMARK_CELLS x WATERMARK_CELLS checker cells of WATERMARK_CELL px on a light plate with a
 *  1 px margin, set WATERMARK_OFFSET_MIN..MAX px in from the bottom and right edges. 18 px: no larger than the
 *  smallest object (18 px), inside the 24 px corner box of the strategies' corner hint, and unlike any class (no
 *  shape is checkered) or any clutter (strokes and blobs are plain). */
export const WATERMARK_CELL = 4;
export const WATERMARK_CELLS = 4;
export const WATERMARK_SIZE = WATERMARK_CELL * WATERMARK_CELLS + 2;
const WATERMARK_OFFSET_MIN = 2;
const WATERMARK_OFFSET_MAX = 5;

export interface Batch {
  /** count images, each size*size*3 bytes, concatenated (NHWC order). */
  pixels: Uint8Array;
  labels: Int32Array;
  boxes: Box[];
}

// ---------------------------------------------------------------------------------------------------------
// PRNG: a 32-bit counter-based generator. The state advances by a Weyl constant and each output is a
// bijective avalanche mix of it, which is plenty for image synthesis and trivially seedable from hashes.

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97) >>> 0;
  return (z ^ (z >>> 15)) >>> 0;
}

/** Hashes a list of integers (any sign, up to 2^53) into a 32-bit seed. */
export function hashInts(...values: number[]): number {
  let h = 0x6a09e667;
  for (const v of values) {
    const lo = v >>> 0;
    const hi = Math.floor(v / 4294967296) >>> 0;
    h = mix32(h ^ lo) + 0x9e3779b9;
    h = mix32(h ^ hi) + 0x9e3779b9;
  }
  return mix32(h);
}

export class Rng {
  private state: number;
  private spare: number | undefined;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    return mix32(this.state);
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Uniform integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

const STREAM_LABEL = 1;
const STREAM_BACKGROUND = 2;
const STREAM_OBJECT = 3;
const STREAM_NOISE = 4;
const STREAM_WATERMARK = 5;

// ---------------------------------------------------------------------------------------------------------
// Drawing helpers on a float RGB canvas (values nominally 0..255, clamped only when quantising).

type Rgb = [number, number, number];

class Canvas {
  readonly data: Float32Array;
  constructor(readonly size: number) {
    this.data = new Float32Array(size * size * 3);
  }
  /** Alpha-blends colour c into pixel (x, y) with weight a in [0, 1]. */
  blend(x: number, y: number, c: Rgb, a: number): void {
    if (a <= 0 || x < 0 || y < 0 || x >= this.size || y >= this.size) return;
    const i = (y * this.size + x) * 3;
    const d = this.data;
    d[i] += (c[0] - d[i]) * a;
    d[i + 1] += (c[1] - d[i + 1]) * a;
    d[i + 2] += (c[2] - d[i + 2]) * a;
  }
}

function randomColour(rng: Rng): Rgb {
  return [rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)];
}

function clampByte(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}

/** Smooth random field: random values on a coarse grid, bilinearly interpolated (value noise). */
function valueNoise(rng: Rng, size: number, cell: number): Float32Array {
  const g = Math.ceil(size / cell) + 2;
  const grid = new Float32Array(g * g);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.uniform(-1, 1);
  const out = new Float32Array(size * size);
  const ox = rng.uniform(0, cell);
  const oy = rng.uniform(0, cell);
  for (let y = 0; y < size; y++) {
    const gy = (y + oy) / cell;
    const iy = Math.floor(gy);
    const fy = gy - iy;
    for (let x = 0; x < size; x++) {
      const gx = (x + ox) / cell;
      const ix = Math.floor(gx);
      const fx = gx - ix;
      const a = grid[iy * g + ix] * (1 - fx) + grid[iy * g + ix + 1] * fx;
      const b = grid[(iy + 1) * g + ix] * (1 - fx) + grid[(iy + 1) * g + ix + 1] * fx;
      out[y * size + x] = a * (1 - fy) + b * fy;
    }
  }
  return out;
}

function drawBackground(canvas: Canvas, rng: Rng, clutter: number): void {
  const n = canvas.size;
  const d = canvas.data;
  // 1. Linear gradient between two colours along a random direction.
  const c1 = randomColour(rng);
  const c2 = randomColour(rng);
  const theta = rng.uniform(0, 2 * Math.PI);
  const gx = Math.cos(theta) / n;
  const gy = Math.sin(theta) / n;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x - n / 2) * gx + (y - n / 2) * gy));
      const i = (y * n + x) * 3;
      for (let k = 0; k < 3; k++) d[i + k] = c1[k] * (1 - t) + c2[k] * t;
    }
  }
  // 2. One or two texture layers: stripes (a sinusoid at a random angle and period) or value noise, each
  //    modulating the pixels along a random colour direction.
  const layers = rng.int(1, 2);
  for (let l = 0; l < layers; l++) {
    const dir: Rgb = [rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)];
    const len = Math.hypot(dir[0], dir[1], dir[2]) || 1;
    const amp = rng.uniform(15, 55) * clutter;
    const w: Rgb = [(dir[0] / len) * amp, (dir[1] / len) * amp, (dir[2] / len) * amp];
    let field: Float32Array;
    if (rng.next() < 0.5) {
      field = new Float32Array(n * n);
      const a = rng.uniform(0, Math.PI);
      const period = rng.uniform(3, 14);
      const phase = rng.uniform(0, 2 * Math.PI);
      const fx = (Math.cos(a) * 2 * Math.PI) / period;
      const fy = (Math.sin(a) * 2 * Math.PI) / period;
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) field[y * n + x] = Math.sin(x * fx + y * fy + phase);
    } else {
      field = valueNoise(rng, n, rng.uniform(3, 16));
    }
    for (let p = 0; p < n * n; p++) {
      const f = field[p];
      d[p * 3] += w[0] * f;
      d[p * 3 + 1] += w[1] * f;
      d[p * 3 + 2] += w[2] * f;
    }
  }
  // 3. Distractor strokes: thin anti-aliased line segments (width 1-2.5 px, thinner than any cross arm).
  const strokes = Math.round(rng.int(2, 7) * clutter);
  for (let s = 0; s < strokes; s++) {
    const c = randomColour(rng);
    const x0 = rng.uniform(-10, n + 10);
    const y0 = rng.uniform(-10, n + 10);
    const ang = rng.uniform(0, 2 * Math.PI);
    const length = rng.uniform(12, 60);
    drawSegment(canvas, x0, y0, x0 + Math.cos(ang) * length, y0 + Math.sin(ang) * length, rng.uniform(0.5, 1.25), c);
  }
  // 4. Distractor blobs: small ellipses (radii 1.5-4 px, far below the smallest object's 9 px radius).
  const blobs = Math.round(rng.int(2, 7) * clutter);
  for (let b = 0; b < blobs; b++) {
    const c = randomColour(rng);
    drawEllipse(canvas, rng.uniform(0, n), rng.uniform(0, n), rng.uniform(1.5, 4), rng.uniform(1.5, 4), rng.uniform(0, Math.PI), c);
  }
}

/** Fills the pixels within halfWidth of segment AB, with a 1 px linear anti-aliasing ramp. */
function drawSegment(canvas: Canvas, ax: number, ay: number, bx: number, by: number, halfWidth: number, c: Rgb): void {
  const n = canvas.size;
  const minX = Math.max(0, Math.floor(Math.min(ax, bx) - halfWidth - 1));
  const maxX = Math.min(n - 1, Math.ceil(Math.max(ax, bx) + halfWidth + 1));
  const minY = Math.max(0, Math.floor(Math.min(ay, by) - halfWidth - 1));
  const maxY = Math.min(n - 1, Math.ceil(Math.max(ay, by) + halfWidth + 1));
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy || 1;
  for (let y = minY; y <= maxY; y++) {
    for (let x = minX; x <= maxX; x++) {
      const px = x + 0.5 - ax;
      const py = y + 0.5 - ay;
      const t = Math.min(1, Math.max(0, (px * dx + py * dy) / len2));
      const dist = Math.hypot(px - t * dx, py - t * dy);
      canvas.blend(x, y, c, Math.min(1, Math.max(0, halfWidth + 0.5 - dist)));
    }
  }
}

function drawEllipse(canvas: Canvas, cx: number, cy: number, rx: number, ry: number, rot: number, c: Rgb): void {
  const n = canvas.size;
  const r = Math.max(rx, ry) + 1;
  const cos = Math.cos(rot);
  const sin = Math.sin(rot);
  for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(n - 1, Math.ceil(cy + r)); y++) {
    for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(n - 1, Math.ceil(cx + r)); x++) {
      const px = x + 0.5 - cx;
      const py = y + 0.5 - cy;
      const u = (px * cos + py * sin) / rx;
      const v = (-px * sin + py * cos) / ry;
      // Approximate signed distance in pixels from the normalised radius, for a soft 1 px edge.
      const dist = (Math.sqrt(u * u + v * v) - 1) * Math.min(rx, ry);
      canvas.blend(x, y, c, Math.min(1, Math.max(0, 0.5 - dist)));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Shapes. Each is an inside test in local coordinates (u, v) where the shape fits in the unit circle, so an
// object of extent `size` pixels is the shape scaled by size/2. Parameters that vary per sample (ring and star
// inner radius, cross arm width) are drawn from the object stream.

type InsideTest = (u: number, v: number) => boolean;

const STAR_SECTOR = (2 * Math.PI) / 5;

function makeShape(label: number, rng: Rng): InsideTest {
  switch (CLASS_NAMES[label]) {
    case 'circle':
      return (u, v) => u * u + v * v <= 1;
    case 'square': {
      const h = Math.SQRT1_2;
      return (u, v) => Math.abs(u) <= h && Math.abs(v) <= h;
    }
    case 'triangle':
      // Equilateral with circumradius 1, so inradius 0.5: inside iff the projection on each of the three edge
      // normals (at -90, 30 and 150 degrees) is at most 0.5.
      return (u, v) => -v <= 0.5 && u * 0.8660254 + v * 0.5 <= 0.5 && -u * 0.8660254 + v * 0.5 <= 0.5;
    case 'star': {
      // Five points at radius 1, inner vertices at radius ri. Fold the angle into half a sector [0, 36deg] and
      // test against the straight edge from the outer vertex A=(1,0) to the inner vertex B.
      const ri = rng.uniform(0.38, 0.5);
      const bx = ri * Math.cos(STAR_SECTOR / 2);
      const by = ri * Math.sin(STAR_SECTOR / 2);
      return (u, v) => {
        const r = Math.hypot(u, v);
        if (r > 1) return false;
        let phi = Math.atan2(v, u) + 2 * Math.PI;
        phi = phi % STAR_SECTOR;
        if (phi > STAR_SECTOR / 2) phi = STAR_SECTOR - phi;
        const qx = r * Math.cos(phi);
        const qy = r * Math.sin(phi);
        // Cross product sign: the origin is on the inside side of AB, where (B-A) x (O-A) > 0.
        return (bx - 1) * qy - by * (qx - 1) >= 0;
      };
    }
    case 'cross': {
      // A plus sign; arm half-width w (2.5+ px at the smallest size) and arm length L keep the corners inside
      // the unit circle.
      const w = rng.uniform(0.22, 0.3);
      const len = Math.sqrt(1 - w * w) * 0.98;
      return (u, v) => {
        const au = Math.abs(u);
        const av = Math.abs(v);
        return (au <= w && av <= len) || (av <= w && au <= len);
      };
    }
    case 'ring': {
      const inner = rng.uniform(0.5, 0.65);
      const i2 = inner * inner;
      return (u, v) => {
        const r2 = u * u + v * v;
        return r2 <= 1 && r2 >= i2;
      };
    }
    default:
      throw new RangeError(`class index ${label} out of range 0..${NUM_CLASSES - 1}`);
  }
}

/** 4x4 supersampling per pixel gives 17 coverage levels, enough anti-aliasing for 18+ px objects. */
const SUPERSAMPLE = 4;

interface Placement {
  cx: number;
  cy: number;
  size: number;
  rotation: number;
}

/** Rasterises the shape into a coverage mask over the whole image and returns it with the tight box. */
function rasterise(inside: InsideTest, p: Placement, n: number): { coverage: Float32Array; box: Box } {
  const coverage = new Float32Array(n * n);
  const radius = p.size / 2;
  const cos = Math.cos(p.rotation);
  const sin = Math.sin(p.rotation);
  const x0 = Math.max(0, Math.floor(p.cx - radius - 1));
  const x1 = Math.min(n - 1, Math.ceil(p.cx + radius + 1));
  const y0 = Math.max(0, Math.floor(p.cy - radius - 1));
  const y1 = Math.min(n - 1, Math.ceil(p.cy + radius + 1));
  const box: Box = { x0: n, y0: n, x1: -1, y1: -1 };
  const step = 1 / SUPERSAMPLE;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let hits = 0;
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        const py = y + (sy + 0.5) * step - p.cy;
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const px = x + (sx + 0.5) * step - p.cx;
          // Rotate into the shape's frame, then scale to the unit circle.
          const u = (px * cos + py * sin) / radius;
          const v = (-px * sin + py * cos) / radius;
          if (inside(u, v)) hits++;
        }
      }
      if (hits > 0) {
        coverage[y * n + x] = hits / (SUPERSAMPLE * SUPERSAMPLE);
        if (x < box.x0) box.x0 = x;
        if (x > box.x1) box.x1 = x;
        if (y < box.y0) box.y0 = y;
        if (y > box.y1) box.y1 = y;
      }
    }
  }
  return { coverage, box };
}

/**
 * Picks the object's colour so it stands out from the background under it: the colour must be at least
 * MIN_CONTRAST away (Euclidean RGB) from the mean background under the object, and differ in luminance
 * enough that the shape is also visible in grey. Falls back to the best of the candidates tried.
 */
const MIN_CONTRAST = 110;
const MIN_LUMA_CONTRAST = 35;

function pickObjectColour(rng: Rng, background: Rgb): Rgb {
  const luma = (c: Rgb): number => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
  let best: Rgb = [0, 0, 0];
  let bestScore = -Infinity;
  for (let attempt = 0; attempt < 24; attempt++) {
    const c = randomColour(rng);
    const dist = Math.hypot(c[0] - background[0], c[1] - background[1], c[2] - background[2]);
    const dl = Math.abs(luma(c) - luma(background));
    if (dist >= MIN_CONTRAST && dl >= MIN_LUMA_CONTRAST) return c;
    const score = Math.min(dist / MIN_CONTRAST, dl / MIN_LUMA_CONTRAST);
    if (score > bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return best;
}

function meanUnder(canvas: Canvas, coverage: Float32Array): Rgb {
  const sum: Rgb = [0, 0, 0];
  let w = 0;
  for (let p = 0; p < coverage.length; p++) {
    const a = coverage[p];
    if (a === 0) continue;
    sum[0] += canvas.data[p * 3] * a;
    sum[1] += canvas.data[p * 3 + 1] * a;
    sum[2] += canvas.data[p * 3 + 2] * a;
    w += a;
  }
  return w > 0 ? [sum[0] / w, sum[1] / w, sum[2] / w] : [128, 128, 128];
}

/**
 * Whether image (seed, index) of class `label` carries the watermark, and where. Reads only the watermark
 * stream: the decision first (so forcing it on or off leaves the position unchanged), then the offsets.
 */
function placeWatermark(seed: number, index: number, label: number, n: number, opts: GenerateOptions): Box | undefined {
  if (opts.watermark === undefined && opts.shortcut === undefined) return undefined;
  const rng = new Rng(hashInts(seed, index, STREAM_WATERMARK));
  const draw = rng.next();
  let on = opts.watermark;
  if (on === undefined) {
    const sc = opts.shortcut!;
    on = draw < (label === sc.classIndex ? sc.classRate : sc.otherRate);
  }
  if (!on) return undefined;
  const right = n - 1 - rng.int(WATERMARK_OFFSET_MIN, WATERMARK_OFFSET_MAX);
  const bottom = n - 1 - rng.int(WATERMARK_OFFSET_MIN, WATERMARK_OFFSET_MAX);
  return { x0: right - WATERMARK_SIZE + 1, y0: bottom - WATERMARK_SIZE + 1, x1: right, y1: bottom };
}

/** The badge: a near-white plate, then dark and light checker cells inside its 1 px margin, nearly opaque. */
function drawWatermark(canvas: Canvas, b: Box): void {
  const light: Rgb = [246, 246, 240];
  const dark: Rgb = [24, 24, 32];
  for (let y = b.y0; y <= b.y1; y++) {
    for (let x = b.x0; x <= b.x1; x++) {
      const u = x - b.x0 - 1;
      const v = y - b.y0 - 1;
      const inner = u >= 0 && v >= 0 && u < WATERMARK_SIZE - 2 && v < WATERMARK_SIZE - 2;
      const isDark = inner && (Math.floor(u / WATERMARK_CELL) + Math.floor(v / WATERMARK_CELL)) % 2 === 0;
      canvas.blend(x, y, isDark ? dark : light, 0.92);
    }
  }
}

function checkArgs(seed: number, index: number): void {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`index must be a non-negative integer, got ${index}`);
}

/** The class of image `index` of stream `seed`, without rendering it (labels have their own random stream). */
export function sampleLabel(seed: number, index: number): number {
  checkArgs(seed, index);
  return new Rng(hashInts(seed, index, STREAM_LABEL)).int(0, NUM_CLASSES - 1);
}

/** Generates image number `index` of the stream identified by `seed`. Pure and deterministic. */
export function generateSample(seed: number, index: number, opts: GenerateOptions = {}): Sample {
  checkArgs(seed, index);
  const label = opts.classIndex ?? sampleLabel(seed, index);
  if (!Number.isInteger(label) || label < 0 || label >= NUM_CLASSES) {
    throw new RangeError(`classIndex must be an integer in 0..${NUM_CLASSES - 1}, got ${label}`);
  }
  const clutter = opts.clutter ?? 1;
  if (!(clutter >= 0 && clutter <= 1)) throw new RangeError(`clutter must be in [0, 1], got ${clutter}`);
  const [lo, hi] = opts.sizeRange ?? [MIN_OBJECT_SIZE, MAX_OBJECT_SIZE];
  if (!(lo >= MIN_OBJECT_SIZE && hi <= MAX_OBJECT_SIZE && lo <= hi)) {
    throw new RangeError(`sizeRange must lie within [${MIN_OBJECT_SIZE}, ${MAX_OBJECT_SIZE}], got [${lo}, ${hi}]`);
  }
  const n = opts.imageSize ?? IMAGE_SIZE;
  if (!Number.isInteger(n) || n < hi + 4) throw new RangeError(`imageSize must be an integer >= ${hi + 4} (largest object + 4), got ${n}`);

  const canvas = new Canvas(n);
  drawBackground(canvas, new Rng(hashInts(seed, index, STREAM_BACKGROUND)), clutter);

  const objRng = new Rng(hashInts(seed, index, STREAM_OBJECT));
  const size = objRng.uniform(lo, hi);
  const r = size / 2;
  // The whole circumscribed circle stays inside the image (with a 1 px margin), so the object is never cut.
  const placement: Placement = {
    cx: objRng.uniform(r + 1, n - r - 1),
    cy: objRng.uniform(r + 1, n - r - 1),
    size,
    rotation: objRng.uniform(0, 2 * Math.PI),
  };
  const inside = makeShape(label, objRng);
  const { coverage, box } = rasterise(inside, placement, n);
  const colour = pickObjectColour(objRng, meanUnder(canvas, coverage));
  // A mild linear shading across the object, so it is not always perfectly flat.
  const shadeAngle = objRng.uniform(0, 2 * Math.PI);
  const shadeAmp = objRng.uniform(0, 30);
  if (opts.drawObject !== false) {
    const sx = Math.cos(shadeAngle) / r;
    const sy = Math.sin(shadeAngle) / r;
    for (let y = box.y0; y <= box.y1; y++) {
      for (let x = box.x0; x <= box.x1; x++) {
        const a = coverage[y * n + x];
        if (a === 0) continue;
        const s = shadeAmp * ((x - placement.cx) * sx + (y - placement.cy) * sy);
        canvas.blend(x, y, [colour[0] + s, colour[1] + s, colour[2] + s], a);
      }
    }
  }

  // The shortcut's watermark, over the object (a stamped logo covers whatever is under it).
  const sc = opts.shortcut;
  if (sc && !(Number.isInteger(sc.classIndex) && sc.classIndex >= 0 && sc.classIndex < NUM_CLASSES && sc.classRate >= 0 &&
    sc.classRate <= 1 && sc.otherRate >= 0 && sc.otherRate <= 1)) {
    throw new RangeError(`shortcut must name a class in 0..${NUM_CLASSES - 1} and rates in [0, 1], got ${JSON.stringify(sc)}`);
  }
  const watermark = placeWatermark(seed, index, label, n, opts);
  if (watermark) drawWatermark(canvas, watermark);

  // Per-pixel Gaussian noise, from its own stream so it is the same with or without the object.
  const noiseRng = new Rng(hashInts(seed, index, STREAM_NOISE));
  const sigma = noiseRng.uniform(2, 12) * Math.max(0.25, clutter);
  const pixels = new Uint8Array(n * n * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = clampByte(canvas.data[i] + sigma * noiseRng.normal());

  return { pixels, label, className: CLASS_NAMES[label], box, object: placement, ...(watermark ? { watermark } : {}) };
}

/** Generates images index..index+count-1 of the stream `seed` into one contiguous NHWC byte buffer. */
export function generateBatch(seed: number, start: number, count: number, opts: GenerateOptions = {}): Batch {
  checkArgs(seed, start);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const size = opts.imageSize ?? IMAGE_SIZE;
  const per = size * size * 3;
  const pixels = new Uint8Array(count * per);
  const labels = new Int32Array(count);
  const boxes: Box[] = [];
  for (let k = 0; k < count; k++) {
    const s = generateSample(seed, start + k, opts);
    pixels.set(s.pixels, k * per);
    labels[k] = s.label;
    boxes.push(s.box);
  }
  return { pixels, labels, boxes };
}
