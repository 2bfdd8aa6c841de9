/**
 * The maps of a dataset, streaming: images are decoded a batch ahead of the model (sharp decodes on libuv's
 * threads while tfjs runs, as the scan does), each image's map is computed by an ImageSession (the same code as
 * the explain panel, so the maps are the ones the user sees there), resized to the common grid and handed on;
 * the session's tensors are freed before the next image, so tfjs memory stays flat in the number of images.
 *
 * The MapCache keeps every computed map with what the view needs of its image (grid-sized RGB thumbnail, size,
 * predictions), keyed by model file, method, options, layer, grid, explained class and the image file (path,
 * modification time, size): re-clustering with another k, another class filter or another seed reads the cache
 * and computes nothing. It is in memory; 10,000 maps on a 32 x 32 grid take about 70 MB. It also keeps the class
 * probabilities of the intervention check (an image as it is, or with one region blurred; keyed by model, image
 * file, class, preprocessing and region), so a re-cluster whose clusters keep their regions runs no model either.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { toErrorInfo } from '../errors';
import { decodeImage } from '../image';
import { dicomOptionsFor, resizeImageLikeTf } from '../pipeline';
import { applyPreprocess, type PreprocessPreset } from '../preprocess';
import type { LoadedModel } from '../model';
import { ImageSession } from '../session';
import type { DatasetSample } from '../scan/dataset';
import { resizeMap } from './hints';

export interface MapEntry {
  /** The map on the grid (row-major, values in [0, 1] as the method normalises them). */
  map: Float32Array;
  /** The image resized to the grid, RGB bytes. */
  thumb: Uint8Array;
  imageWidth: number;
  imageHeight: number;
  /** Label indices (the model's output index minus labelOffset). */
  predictedIndex: number;
  predictedProbability: number;
  explainedIndex: number;
  probability: number;
}

/** What the maps are made of; with an image file it makes the cache key. */
export interface MapSpec {
  method: string;
  /** The resolved layer name (not undefined: the key must not depend on the default). */
  layer: string;
  methodOptions?: Record<string, unknown>;
  gridWidth: number;
  gridHeight: number;
}

export class MapCache {
  private readonly entries = new Map<string, MapEntry>();
  private readonly probes = new Map<string, number>();
  /** Maps computed (misses) and served (hits) since the cache was made. */
  computed = 0;
  served = 0;
  /** Intervention probabilities computed and served. */
  probesComputed = 0;
  probesServed = 0;

  constructor(readonly maxEntries = 100_000) {}

  static key(model: LoadedModel, spec: MapSpec, file: string, explained: number | 'top'): string {
    return [model.path, model.output, spec.method, JSON.stringify(spec.methodOptions ?? {}), spec.layer, `${spec.gridWidth}x${spec.gridHeight}`, String(explained), file, fileStamp(file)].join('\u0000');
  }

  /**
   * The keys of intervention probabilities: the model's output `index` for `file` with each of `regions` blurred
   * (undefined: the image as it is). The file is looked at once for all of them.
   */
  static probeKeys(model: LoadedModel, file: string, index: number, regions: readonly (readonly number[] | undefined)[], input: { preprocess?: string; maxPixels?: number }): string[] {
    const base = [model.path, model.output, input.preprocess ?? '', String(input.maxPixels ?? ''), String(index), file, fileStamp(file)].join('\u0000');
    return regions.map((r) => `${base}\u0000${r ? r.join(',') : 'none'}`);
  }

  getProbe(key: string): number | undefined {
    const p = this.probes.get(key);
    if (p !== undefined) this.probesServed++;
    return p;
  }

  setProbe(key: string, p: number): void {
    this.probesComputed++;
    this.probes.set(key, p);
    while (this.probes.size > this.maxEntries) this.probes.delete(this.probes.keys().next().value as string);
  }

  get(key: string): MapEntry | undefined {
    const e = this.entries.get(key);
    if (e) this.served++;
    return e;
  }

  set(key: string, e: MapEntry): void {
    this.computed++;
    this.entries.set(key, e);
    // Oldest first out: a Map iterates in insertion order.
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.probes.clear();
  }
}

/** A file's modification time and size, so an edited image is a new key. */
function fileStamp(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.mtimeMs}:${st.size}`;
  } catch {
    return 'missing';
  }
}

/** One image to map, and the class to explain (label index), or undefined for its top-1 class. */
export interface MapJob {
  sample: DatasetSample;
  explain?: number;
}

export interface MapsProgress {
  done: number;
  total: number;
  failed: number;
  fromCache: number;
  mapsPerSecond: number;
  secondsLeft: number;
}

export interface MapsOptions {
  cache?: MapCache;
  signal?: AbortSignal;
  onProgress?: (p: MapsProgress) => void;
  preprocess?: PreprocessPreset;
  maxPixels?: number;
  /** Images decoded together (one batch ahead of the model). Default 8. */
  batchSize?: number;
}

export interface MapsResult {
  /** Per job its entry, or undefined where it failed or the run was cancelled before it. */
  entries: (MapEntry | undefined)[];
  failures: { path: string; relPath: string; error: string }[];
  fromCache: number;
  cancelled: boolean;
  seconds: number;
}

interface Decoded {
  input?: Float32Array;
  thumb?: Uint8Array;
  width?: number;
  height?: number;
  error?: string;
}

async function decodeFor(model: LoadedModel, file: string, spec: MapSpec, opts: MapsOptions): Promise<Decoded> {
  try {
    const img = await decodeImage(file, { maxPixels: opts.maxPixels, dicom: dicomOptionsFor(model) });
    const px = resizeImageLikeTf(img, model.inputWidth, model.inputHeight, model.inputChannels);
    const small = resizeImageLikeTf(img, spec.gridWidth, spec.gridHeight, 3);
    const thumb = Uint8Array.from(small, (v) => Math.max(0, Math.min(255, Math.round(v))));
    return { input: applyPreprocess(px, model.inputChannels, opts.preprocess ?? model.metadata.preprocess), thumb, width: img.width, height: img.height };
  } catch (e) {
    return { error: toErrorInfo(e).message };
  }
}

/** The preprocessed model input of an image (H x W x C), for the intervention's forward passes. */
export async function modelInput(model: LoadedModel, file: string, opts: { preprocess?: PreprocessPreset; maxPixels?: number } = {}): Promise<Float32Array> {
  const img = await decodeImage(file, { maxPixels: opts.maxPixels, dicom: dicomOptionsFor(model) });
  const px = resizeImageLikeTf(img, model.inputWidth, model.inputHeight, model.inputChannels);
  return applyPreprocess(px, model.inputChannels, opts.preprocess ?? model.metadata.preprocess);
}

/** One image's map through an ImageSession, which is disposed before this returns. */
async function mapOne(model: LoadedModel, d: Decoded, job: MapJob, spec: MapSpec, signal?: AbortSignal): Promise<MapEntry> {
  const input = tf.tensor4d(d.input as Float32Array, [1, model.inputHeight, model.inputWidth, model.inputChannels]);
  const session = new ImageSession(model, input);
  try {
    const r = await session.explain({ method: spec.method, layer: spec.layer, classChoice: job.explain, options: spec.methodOptions, signal });
    const [top] = await session.predictions(1);
    const h = r.heatmap;
    return {
      map: resizeMap(h.values, h.width, h.height, spec.gridWidth, spec.gridHeight),
      thumb: d.thumb as Uint8Array,
      imageWidth: d.width as number,
      imageHeight: d.height as number,
      predictedIndex: top.index,
      predictedProbability: top.probability,
      explainedIndex: r.target.index,
      probability: r.target.probability,
    };
  } finally {
    session.dispose();
  }
}

/** The maps of `jobs`, in order, from the cache where they are there (see the file comment). */
export async function computeMaps(model: LoadedModel, jobs: MapJob[], spec: MapSpec, opts: MapsOptions = {}): Promise<MapsResult> {
  const t0 = performance.now();
  const total = jobs.length;
  const entries: (MapEntry | undefined)[] = new Array(total).fill(undefined);
  const failures: MapsResult['failures'] = [];
  const keys = jobs.map((j) => MapCache.key(model, spec, j.sample.path, j.explain ?? 'top'));
  let fromCache = 0;
  let done = 0;
  let computedHere = 0;
  const progress = () => {
    const secs = (performance.now() - t0) / 1000;
    const rate = computedHere / Math.max(secs, 1e-6);
    const left = total - done;
    opts.onProgress?.({ done, total, failed: failures.length, fromCache, mapsPerSecond: rate, secondsLeft: rate > 0 ? left / rate : 0 });
  };
  // Cache hits first: they cost nothing, and a re-cluster is then all hits.
  const todo: number[] = [];
  for (let i = 0; i < total; i++) {
    const hit = opts.cache?.get(keys[i]);
    if (hit) {
      entries[i] = hit;
      fromCache++;
      done++;
    } else todo.push(i);
  }
  if (fromCache) progress();
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const batches: number[][] = [];
  for (let i = 0; i < todo.length; i += batchSize) batches.push(todo.slice(i, i + batchSize));
  const decode = (b: number[]) => Promise.all(b.map((i) => decodeFor(model, jobs[i].sample.path, spec, opts)));
  let next: Promise<Decoded[]> | undefined = batches.length ? decode(batches[0]) : undefined;
  let cancelled = false;
  try {
    for (let b = 0; b < batches.length; b++) {
      const decoded = await (next as Promise<Decoded[]>);
      next = b + 1 < batches.length ? decode(batches[b + 1]) : undefined;
      for (let k = 0; k < batches[b].length; k++) {
        if (opts.signal?.aborted) {
          cancelled = true;
          break;
        }
        const i = batches[b][k];
        const d = decoded[k];
        const sample = jobs[i].sample;
        if (d.error !== undefined) {
          failures.push({ path: sample.path, relPath: sample.relPath, error: d.error });
        } else {
          try {
            const e = await mapOne(model, d, jobs[i], spec, opts.signal);
            entries[i] = e;
            opts.cache?.set(keys[i], e);
            computedHere++;
          } catch (e) {
            if (opts.signal?.aborted) {
              cancelled = true;
              break;
            }
            failures.push({ path: sample.path, relPath: sample.relPath, error: toErrorInfo(e).message });
          }
        }
        done++;
      }
      if (cancelled) break;
      progress();
      // Let the event loop breathe between batches (progress messages, cancellation).
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    if (next) await next.catch(() => undefined);
  }
  return { entries, failures, fromCache, cancelled, seconds: (performance.now() - t0) / 1000 };
}
