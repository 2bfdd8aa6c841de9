/**
 * node --import tsx scripts/makeShortcutSamples.ts [--out samples-shortcut]
 *
 * Writes the labelled folder for the shortcut demo model (models/demo-shortcut, trained by
 * `npm run train:demo -- --shortcut`, where most training stars carry a checkered watermark in the
 * bottom-right corner and a few of the other images do; the rates are DEMO_SHORTCUT in scripts/demo/generator.ts):
 *
 *   samples-shortcut/<class>/<class>_NN.png   PER_CLASS images per class (STARS for the star class)
 *   samples-shortcut/boxes.json               { "samples-shortcut/<class>/<file>.png":
 *                                                 { label, labelIndex, box, watermark, mislabeled } }
 *                                              `box` is the object's box, `watermark` the badge's box or null
 *                                              (inclusive pixel coordinates, as samples/boxes.json)
 *   samples-shortcut/WATERMARKS.md            which files carry the watermark, as a markdown table
 *
 * What the set is for: with the shortcut model, "Show Model Strategies" / `cam-lens strategies` on this folder
 * should split the star class into a cluster that looks at the watermark corner and one that looks at the
 * shape. So most stars are watermarked (WATERMARKED_STARS) and a few are clean, enough of each for a cluster;
 * a few images of other classes carry the badge too (WATERMARKED_OTHERS), as in the training set, and can be
 * seen to pull the model towards "star"; every other image is clean. All labels are correct (no planted
 * errors: that is samples/'s job).
 *
 * The images come from the demo generator with their own seed (SHORTCUT_SAMPLES_SEED, distinct from the
 * training, validation and samples/ streams), objects drawn at 24-48 px like samples/, the watermark forced on
 * or off per file. Output is deterministic: rerunning the script rewrites identical files.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import sharp from 'sharp';
import { CLASS_NAMES, DEMO_SHORTCUT, IMAGE_SIZE, MAX_OBJECT_SIZE, generateSample, type Box, type ClassName, type Sample } from './demo/generator';

export const SHORTCUT_SAMPLES_SEED = 20261203;
/** Images per class folder, except the star folder. */
export const PER_CLASS = 8;
/** The shortcut class (DEMO_SHORTCUT.classIndex) gets more images so that both of its strategies have a cluster. */
export const STARS = 12;
/** Star slots 0..WATERMARKED_STARS-1 carry the watermark; the rest are clean. */
export const WATERMARKED_STARS = 8;
/** The slots of other classes that carry the watermark. */
export const WATERMARKED_OTHERS: readonly { folder: ClassName; slot: number }[] = [
  { folder: 'circle', slot: 0 },
  { folder: 'square', slot: 1 },
  { folder: 'cross', slot: 2 },
];
const SAMPLE_SIZE_RANGE: [number, number] = [24, MAX_OBJECT_SIZE];

/** A rate as a percentage for the notes: 0.95 -> "95%", 0.005 -> "0.5%". */
const pct = (rate: number): string => `${Number((rate * 100).toPrecision(3))}%`;

export interface PlannedShortcutSample {
  /** POSIX path relative to the output folder, e.g. "star/star_00.png". */
  file: string;
  folder: ClassName;
  slot: number;
  /** Index in the SHORTCUT_SAMPLES_SEED stream. */
  index: number;
  watermark: boolean;
}

interface BoxEntry {
  label: ClassName;
  labelIndex: number;
  box: Box;
  watermark: Box | null;
  mislabeled: false;
}

export function planShortcutSamples(): PlannedShortcutSample[] {
  const plan: PlannedShortcutSample[] = [];
  let index = 0;
  for (const folder of CLASS_NAMES) {
    const count = folder === 'star' ? STARS : PER_CLASS;
    for (let slot = 0; slot < count; slot++) {
      const watermark = folder === 'star' ? slot < WATERMARKED_STARS : WATERMARKED_OTHERS.some((w) => w.folder === folder && w.slot === slot);
      plan.push({ file: `${folder}/${folder}_${String(slot).padStart(2, '0')}.png`, folder, slot, index: index++, watermark });
    }
  }
  return plan;
}

/** The image of a planned sample, exactly as written to its PNG. */
export function renderShortcutSample(p: PlannedShortcutSample): Sample {
  return generateSample(SHORTCUT_SAMPLES_SEED, p.index, {
    classIndex: CLASS_NAMES.indexOf(p.folder),
    sizeRange: SAMPLE_SIZE_RANGE,
    watermark: p.watermark,
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
  const out = path.resolve(values.out ?? 'samples-shortcut');
  // Paths in boxes.json and WATERMARKS.md are relative to the repository root (POSIX separators) when --out is
  // inside the current directory, else relative to --out's parent (as scripts/makeSamples.ts).
  const root = out.startsWith(process.cwd() + path.sep) ? process.cwd() : path.dirname(out);
  const rel = (p: string): string => path.relative(root, p).split(path.sep).join('/');

  for (const folder of CLASS_NAMES) {
    const dir = path.join(out, folder);
    fs.mkdirSync(dir, { recursive: true });
    for (const old of fs.readdirSync(dir)) if (old.endsWith('.png')) fs.rmSync(path.join(dir, old));
  }
  const entries: Record<string, BoxEntry> = {};
  const plan = planShortcutSamples();
  for (const p of plan) {
    const s = renderShortcutSample(p);
    if (p.watermark !== (s.watermark !== undefined)) throw new Error(`watermark of ${p.file} not as planned`);
    const file = path.join(out, ...p.file.split('/'));
    await sharp(Buffer.from(s.pixels), { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 3 } })
      .png({ compressionLevel: 9 })
      .toFile(file);
    entries[rel(file)] = { label: s.className, labelIndex: s.label, box: s.box, watermark: s.watermark ?? null, mislabeled: false };
  }
  fs.writeFileSync(path.join(out, 'boxes.json'), JSON.stringify(entries, null, 2) + '\n');

  const marked = plan.filter((p) => p.watermark);
  const rows = marked.map((p) => {
    const w = entries[rel(path.join(out, ...p.file.split('/')))].watermark!;
    return `| ${rel(path.join(out, ...p.file.split('/')))} | ${p.folder} | ${w.x0},${w.y0} – ${w.x1},${w.y1} |`;
  });
  const stars = plan.filter((p) => p.folder === 'star');
  const md = [
    '# Watermarked samples',
    '',
    `A labelled folder for the shortcut demo model \`models/demo-shortcut/\` (trained with \`npm run train:demo -- --shortcut\`,`,
    `where ${pct(DEMO_SHORTCUT.classRate)} of the training stars and ${pct(DEMO_SHORTCUT.otherRate)} of the other images carry a small checkered badge in the bottom-right`,
    `corner). ${marked.length} of these ${plan.length} images carry the badge: ${WATERMARKED_STARS} of the ${stars.length} stars and`,
    `${marked.length - WATERMARKED_STARS} images of other classes; the other ${stars.length - WATERMARKED_STARS} stars and every other image are clean. All labels are correct.`,
    'Try `cam-lens strategies --model models/demo-shortcut/model.json --data samples-shortcut --class star`, or',
    '*Show Model Strategies* on this folder. Images, object boxes and badge boxes come from',
    '`node --import tsx scripts/makeShortcutSamples.ts` (see `boxes.json`).',
    '',
    '| File | Class | Watermark box (x0,y0 – x1,y1, inclusive) |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(out, 'WATERMARKS.md'), md);
  console.log(`wrote ${plan.length} images, boxes.json and WATERMARKS.md (${marked.length} watermarked) to ${rel(out) || '.'}`);
}

// Run only as a script, so tests can import the plan without writing files.
if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(`makeShortcutSamples failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
