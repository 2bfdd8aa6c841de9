/**
 * Channel ordering and painting for the inspector's feature grid. Pure (no DOM).
 */
import { colormapIndex, colormapLut, type ColormapName } from '../../shared/colormaps';
import type { FeatureSort } from '../../shared/protocol';

/**
 * Display order of `channels` channels.
 *  - 'index': 0, 1, 2, ...
 *  - 'mean': most active first (descending mean activation): the channels that fire on this image.
 *  - 'weight': descending weight for the selected class (Grad-CAM alpha_k): the channels that push the class
 *    score up first, the ones that argue against it last.
 * Ties keep index order (a stable sort), and NaN keys sort last, so a broken channel never takes the top spot.
 * Without the keys a sort needs (no weights were sent), the order is by index.
 */
export function channelOrder(
  sort: FeatureSort,
  channels: number,
  mean?: ArrayLike<number>,
  weights?: ArrayLike<number>,
): number[] {
  const order = Array.from({ length: channels }, (_, i) => i);
  const key = sort === 'mean' ? mean : sort === 'weight' ? weights : undefined;
  if (!key || key.length < channels) return order;
  return order.sort((a, b) => {
    const ka = key[a];
    const kb = key[b];
    const na = Number.isNaN(ka);
    const nb = Number.isNaN(kb);
    if (na || nb) return na === nb ? a - b : na ? 1 : -1;
    return kb - ka || a - b;
  });
}

/**
 * Paints channel `c` of a channel-major `values` block (each channel `w*h` values) into RGBA: min-max normalised
 * with the channel's own range, `(v - min) / (max - min + eps)`, then coloured. A constant channel (a dead ReLU,
 * max = min) paints entirely in the cold colour instead of dividing by zero. Alpha is 255.
 */
export function paintChannel(
  values: ArrayLike<number>,
  c: number,
  w: number,
  h: number,
  min: number,
  max: number,
  colormap: ColormapName,
  out?: Uint8ClampedArray,
  eps = 1e-7,
): Uint8ClampedArray {
  const n = w * h;
  const rgba = out ?? new Uint8ClampedArray(4 * n);
  if (rgba.length < 4 * n) throw new RangeError(`paintChannel: output holds ${rgba.length} bytes, ${n} values need ${4 * n}`);
  const lut = colormapLut(colormap);
  const lo = Number.isFinite(min) ? min : 0;
  const scale = 1 / ((Number.isFinite(max) ? max : lo) - lo + eps);
  const base = c * n;
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const j = 3 * colormapIndex((values[base + i] - lo) * scale);
    rgba[o] = lut[j];
    rgba[o + 1] = lut[j + 1];
    rgba[o + 2] = lut[j + 2];
    rgba[o + 3] = 255;
  }
  return rgba;
}

/**
 * Index of the cell reached from `from` by a navigation key in a grid of `count` cells laid out `columns` wide
 * (row-major, in display order). Returns `from` when the key leads nowhere.
 */
export function gridMove(key: string, from: number, count: number, columns: number): number {
  const cols = Math.max(1, columns);
  let to = from;
  switch (key) {
    case 'ArrowRight': to = from + 1; break;
    case 'ArrowLeft': to = from - 1; break;
    case 'ArrowDown': to = from + cols; break;
    case 'ArrowUp': to = from - cols; break;
    case 'Home': to = 0; break;
    case 'End': to = count - 1; break;
    case 'PageDown': to = Math.min(count - 1, from + cols * 4); break;
    case 'PageUp': to = Math.max(0, from - cols * 4); break;
    default: return from;
  }
  return to >= 0 && to < count ? to : from;
}
