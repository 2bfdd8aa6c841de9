/**
 * The strategies report as one self-contained HTML page (`cam-lens strategies --html`): every picture is a PNG
 * inlined as a data: URL, the style is inline CSS, and there is no script, so the file can be mailed, attached
 * to a CI run or opened offline. Per class: the average map over the average image, the cluster choice
 * (eigenvalues, neighbours), then one card per cluster with its average map over the class's average image, its
 * size, the hints (each number with its rule in a tooltip and in the rules list at the end) and the members
 * nearest its centre.
 */
import sharp from 'sharp';
import { renderOverlayPng } from '../overlay';
import type { DecodedImage } from '../image';
import type { ClassStrategies, MapGrid, RgbImage, ShortcutHints, StrategiesReport } from './types';

const SIDE = 128;
const THUMB = 72;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const dataUrl = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;

/** The map over the (average) image, both brought to SIDE x SIDE. */
async function overlay(map: MapGrid, image: RgbImage): Promise<string> {
  const big = await sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } }).resize(SIDE, SIDE, { kernel: 'cubic' }).raw().toBuffer();
  const img = { width: SIDE, height: SIDE, channels: 3, data: new Uint8Array(big), originalChannels: 3, format: 'png', hadAlpha: false } as DecodedImage;
  return dataUrl(await renderOverlayPng(img, { width: map.width, height: map.height, values: map.values }, { opacity: 0.55 }));
}

async function thumb(file: string): Promise<string | undefined> {
  try {
    return dataUrl(await sharp(file).resize(THUMB, THUMB, { fit: 'inside' }).png().toBuffer());
  } catch {
    return undefined;
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
/** A drop of probability: "−12.0%" (a rise shows as "+0.3%"). */
const drop = (x: number) => (x >= 0 ? `−${pct(x)}` : `+${pct(-x)}`);

function hintRows(h: ShortcutHints): string {
  const rows = [
    `<tr title="${esc(h.corner.rule)}"><th>corner (${esc(h.corner.corner)})</th><td class="${h.corner.share >= 0.5 ? 'warn' : ''}">${pct(h.corner.share)}</td><td>flat map: ${pct(h.corner.uniform)}</td></tr>`,
    `<tr title="${esc(h.border.rule)}"><th>outer 10% border</th><td>${pct(h.border.share)}</td><td>flat map: ${pct(h.border.uniform)}</td></tr>`,
  ];
  if (h.outsideBox) rows.push(`<tr title="${esc(h.outsideBox.rule)}"><th>outside the object box</th><td>${pct(h.outsideBox.share)}</td><td>flat map: ${pct(h.outsideBox.uniform)} (${h.outsideBox.images} images)</td></tr>`);
  const iv = h.intervention;
  if (iv) {
    rows.push(`<tr title="${esc(iv.rule)}"><th>blur hot region</th><td class="${iv.ratio >= 3 ? 'warn' : ''}">${drop(iv.hotDrop)}</td><td>control ${drop(iv.controlDrop)}; ${iv.ratio.toFixed(1)}× (${iv.images} images, p ${pct(iv.baseline)})</td></tr>`);
  }
  return `<table class="hints">${rows.join('')}</table>`;
}

async function classSection(c: ClassStrategies): Promise<string> {
  const cards: string[] = [];
  for (const k of c.clusters) {
    const members: string[] = [];
    for (const m of k.nearest) {
      const src = await thumb(m.path);
      members.push(`<figure>${src ? `<img src="${src}" alt="">` : '<div class="missing">?</div>'}<figcaption>${esc(m.relPath)}<br>d ${m.distance.toFixed(3)}</figcaption></figure>`);
    }
    const far = k.nearestOther !== undefined ? `; nearest other cluster at ${k.nearestOther.toFixed(3)}` : '';
    cards.push(`<section class="card"><h3>Cluster ${k.id + 1}: ${k.size} image${k.size === 1 ? '' : 's'} (${pct(k.fraction)})</h3>
<img class="map" src="${await overlay(k.averageMap, c.averageImage)}" alt="average map of cluster ${k.id + 1}">
<p class="small">distance of its average map from the others (unit length, 0..1.41)${far}</p>
${hintRows(k.hints)}
<div class="members">${members.join('')}</div></section>`);
  }
  const cc = c.clusterChoice;
  return `<section class="class"><h2>${esc(c.label)} <span class="small">(${c.count} images)</span></h2>
<div class="row"><div><img class="map" src="${await overlay(c.averageMap, c.averageImage)}" alt="class average map"><p class="small">average map over the average image</p></div>
<div><p>${cc.k} cluster${cc.k === 1 ? '' : 's'} (${cc.by}${cc.eigengap !== undefined ? `, gap ${cc.eigengap.toFixed(3)}` : ''}; ${cc.neighbours} neighbours)</p>
<p class="small">Laplacian eigenvalues: ${cc.eigenvalues.map((v) => v.toFixed(3)).join(', ')}</p>${hintRows(c.hints)}</div></div>
<div class="cards">${cards.join('\n')}</div></section>`;
}

export async function renderStrategiesHtml(r: StrategiesReport): Promise<string> {
  const sections: string[] = [];
  for (const c of r.classes) sections.push(await classSection(c));
  const rules = Object.entries(r.rules).map(([k, v]) => `<li><b>${esc(k)}</b>: ${esc(v)}</li>`).join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CAM Lens strategies: ${esc(r.modelName)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
@media (prefers-color-scheme:dark){body{color:#ddd;background:#1e1e1e}.card{background:#252526!important;border-color:#444!important}}
h1{font-size:20px}h2{font-size:18px;margin-top:32px}h3{font-size:15px;margin:0 0 8px}
.small{color:#777;font-size:12px}.row{display:flex;gap:24px;align-items:flex-start}
.cards{display:flex;flex-wrap:wrap;gap:16px;margin-top:12px}.card{border:1px solid #ccc;border-radius:8px;padding:12px;width:420px;background:#fafafa}
img.map{width:${SIDE}px;height:${SIDE}px;image-rendering:auto;border-radius:4px}
.hints{border-collapse:collapse;margin:8px 0}.hints th{text-align:left;font-weight:normal;padding:2px 8px 2px 0}.hints td{padding:2px 8px}
.warn{color:#c62828;font-weight:bold}.members{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;width:${THUMB + 8}px;font-size:10px;word-break:break-all}figure img{width:${THUMB}px;height:${THUMB}px;object-fit:contain}
.missing{width:${THUMB}px;height:${THUMB}px;background:#ccc}
</style></head><body>
<h1>Model strategies: ${esc(r.modelName)}</h1>
<p>${esc(r.method)} maps at layer <code>${esc(r.layer)}</code> of ${r.counts.analysed} of ${r.counts.images} images in <code>${esc(r.data)}</code>, grouped by ${r.groupBy} label, on a ${r.mapSize.width}x${r.mapSize.height} grid${r.boxes ? `; object boxes from ${esc(r.boxes.source)} (${r.boxes.format})` : ''}${r.cancelled ? '; <b>cancelled: partial results</b>' : ''}.</p>
${sections.join('\n')}
<h2>Rules</h2><ul>${rules}</ul>
${r.failures.length ? `<h2>Not analysed</h2><ul>${r.failures.map((f) => `<li>${esc(f.relPath)}: ${esc(f.error)}</li>`).join('')}</ul>` : ''}
</body></html>
`;
}
