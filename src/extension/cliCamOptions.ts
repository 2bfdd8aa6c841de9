/**
 * The `cam` command's options of the class-activation-map family (issue #15 items 3-5), checked as usage before
 * any file is read (cli.ts' rule):
 *
 *   --layer <a,b> / --layer a --layer b   several target layers: their maps brought to the input size and
 *                                         averaged (CAM methods only); one name is the one target layer
 *   --aug-smooth                          test-time augmentation (flip x scales 1.0, 1.1, 1.2), CAM methods
 *   --eigen-smooth                        first principal component of the weighted activations, for the CAM
 *                                         methods that sum weight x activation (not eigencam, eigengradcam)
 *   --channels, --batch-size              ablationcam too, as scorecam (cli.ts parses them)
 */
import { getMethod } from './engine/cam/registry';
import { MAX_LAYERS } from './engine/cam/combine';
import type { Values } from './cliArgs';

/** parseArgs definitions of the flags (cli.ts OPTIONS); `layer` replaces cli.ts' single-valued one. */
export const CAM_FAMILY_OPTIONS = {
  layer: { type: 'string', multiple: true },
  'aug-smooth': { type: 'boolean' },
  'eigen-smooth': { type: 'boolean' },
} as const;

export const CAM_FAMILY_OPTION_NAMES = ['aug-smooth', 'eigen-smooth'] as const;

/** Methods whose channel budget (--channels) and batches (--batch-size) the command line sets, as Score-CAM's. */
export const CHANNEL_BUDGET_METHODS = ['scorecam', 'ablationcam'];

/** The usage lines of `--help`. */
export const CAM_FAMILY_USAGE = `class activation map options (every CAM method):
  --layer <a,b>                  several target layers (or --layer a --layer b): each layer's map brought to
                                 the input size, then averaged (a map at the input's size)
  --aug-smooth                   average the maps of 6 copies of the image (unflipped and flipped, scaled 1.0,
                                 1.1, 1.2) mapped back to it: smoother, 6 times the cost
  --eigen-smooth                 first principal component of the weighted activations instead of their sum
                                 (not eigencam, eigengradcam: their map already is one)
  ablationcam takes --channels and --batch-size as scorecam does (default: the 32 channels of largest mean
  activation, one pass of the layers after the target each).`;

/** The target layer(s) of --layer: undefined (recommended layer), one layer, or several. */
export function layerChoice(methodId: string, v: Values, fail: (msg: string) => never): { layer?: string; layers?: string[] } {
  const raw = v.layer;
  if (raw === undefined) return {};
  const given = (Array.isArray(raw) ? raw : [String(raw)]);
  const names: string[] = [];
  for (const g of given) {
    for (const part of g.split(',')) {
      const name = part.trim();
      if (name === '') fail(`--layer needs layer names, got "${g}"`);
      if (names.includes(name)) fail(`--layer lists "${name}" twice`);
      names.push(name);
    }
  }
  if (names.length === 1) return { layer: names[0] };
  if (getMethod(methodId).group !== 'cam') fail(`several layers (--layer ${names.join(',')}) apply to class activation maps, not to --method ${methodId}`);
  if (names.length > MAX_LAYERS) fail(`--layer lists ${names.length} layers: at most ${MAX_LAYERS} can be averaged`);
  return { layer: names[0], layers: names };
}

/** The engine options of --aug-smooth and --eigen-smooth; undefined where neither is given. */
export function smoothingOptions(methodId: string, v: Values, fail: (msg: string) => never): { augSmooth?: true; eigenSmooth?: true } | undefined {
  const aug = v['aug-smooth'] === true;
  const eigen = v['eigen-smooth'] === true;
  if (!aug && !eigen) return undefined;
  const m = getMethod(methodId);
  for (const [on, flag] of [[aug, '--aug-smooth'], [eigen, '--eigen-smooth']] as const) {
    if (on && m.group !== 'cam') fail(`${flag} applies to class activation maps, not to --method ${methodId}`);
  }
  if (eigen && !m.weightedActivations) fail(`--eigen-smooth does not apply to --method ${methodId}: its map already is the first principal component`);
  return { ...(aug ? { augSmooth: true as const } : {}), ...(eigen ? { eigenSmooth: true as const } : {}) };
}
