/**
 * node --import tsx scripts/readmeImages.ts
 *
 * Redraws the README's pictures of the bundled demo model (run it after retraining models/demo):
 *   docs/images/demo-overlay.png    Grad-CAM of the top class of samples/star/star_00.png (what `npm run demo`
 *                                   writes), enlarged 3x
 *   docs/images/mislabeled-pair.png the planted error samples/star/star_06.png: Grad-CAM for the predicted label
 *                                   (left) and for the given label "star" (right), each enlarged 3x
 * The explain-panel screenshot (docs/images/explain-panel.png) comes from VS Code itself and is not redrawn here.
 */
import * as path from 'path';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { openImage } from '../src/extension/engine/pipeline';
import { renderOverlayPng } from '../src/extension/engine/overlay';

const ROOT = path.resolve(__dirname, '..');
const SCALE = 3;
const GAP = 12;

async function main(): Promise<void> {
  await initBackend('wasm');
  const model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
  const overlay = async (file: string, classChoice?: string): Promise<{ png: Buffer; label: string; w: number; h: number }> => {
    const opened = await openImage(model, path.join(ROOT, file));
    try {
      const r = await opened.session.explain({ method: 'gradcam', classChoice });
      const png = await renderOverlayPng(opened.image, r.heatmap, { colormap: 'turbo', opacity: 0.5 });
      const { width: w, height: h } = opened.image;
      return { png: await sharp(png).resize(w * SCALE, h * SCALE).png().toBuffer(), label: r.target.label, w: w * SCALE, h: h * SCALE };
    } finally {
      opened.session.dispose();
    }
  };
  const demo = await overlay('samples/star/star_00.png');
  // Palette PNGs: a tenth of the size, no visible difference at this scale.
  await sharp(demo.png).png({ palette: true }).toFile(path.join(ROOT, 'docs', 'images', 'demo-overlay.png'));
  const predicted = await overlay('samples/star/star_06.png');
  const given = await overlay('samples/star/star_06.png', 'star');
  await sharp({ create: { width: predicted.w + GAP + given.w, height: predicted.h, channels: 3, background: '#ffffff' } })
    .composite([{ input: predicted.png, left: 0, top: 0 }, { input: given.png, left: predicted.w + GAP, top: 0 }])
    .png({ palette: true })
    .toFile(path.join(ROOT, 'docs', 'images', 'mislabeled-pair.png'));
  console.log(`demo-overlay.png: "${demo.label}"; mislabeled-pair.png: "${predicted.label}" (predicted) | "${given.label}" (given)`);
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(`readmeImages failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
