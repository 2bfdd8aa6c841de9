/**
 * node --import tsx scripts/package/icon.ts
 *
 * Draws media/icon.png, the extension's Marketplace and Extensions-view icon (256x256; the manifest's `icon`
 * must be a PNG): a lens over a class activation map. The map is what the extension draws: a coarse grid of
 * activations (7x7, like MobileNet's last convolution) with one hot region, coloured by the same turbo table
 * the overlay uses (src/shared/colormaps.ts), seen through a lens with the orange handle of the panel icon
 * (media/icon.svg). Drawn as SVG here, rendered by sharp.
 */
import * as path from 'path';
import sharp from 'sharp';
import { colormapIndex, colormapLut } from '../../src/shared/colormaps';

const ROOT = path.resolve(__dirname, '..', '..');
const SIZE = 256;
const GRID = 7;
// The lens: centre and radius of its glass; the handle leaves it at 45 degrees towards the bottom right.
const CX = 106, CY = 106, R = 74;

/** A smooth bump off-centre, like a Grad-CAM focus on an object: 1 at its peak, towards 0 at the edges. */
function activation(i: number, j: number): number {
  const x = (j + 0.5) / GRID, y = (i + 0.5) / GRID;
  const d2 = ((x - 0.42) ** 2 + (y - 0.4) ** 2) / 0.06;
  return Math.exp(-d2) * 0.95 + 0.05 * (1 - y);
}

function hex(v: number): string {
  const lut = colormapLut('turbo');
  const k = 3 * colormapIndex(v);
  return `#${[lut[k], lut[k + 1], lut[k + 2]].map((c) => c.toString(16).padStart(2, '0')).join('')}`;
}

function iconSvg(): string {
  const cell = (2 * R) / GRID;
  const cells: string[] = [];
  for (let i = 0; i < GRID; i++) {
    for (let j = 0; j < GRID; j++) {
      const x = CX - R + j * cell, y = CY - R + i * cell;
      cells.push(`<rect x="${x.toFixed(2)}" y="${y.toFixed(2)}" width="${(cell + 0.6).toFixed(2)}" height="${(cell + 0.6).toFixed(2)}" fill="${hex(activation(i, j))}"/>`);
    }
  }
  const hx = CX + R * Math.SQRT1_2, hy = CY + R * Math.SQRT1_2;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}" viewBox="0 0 ${SIZE} ${SIZE}">
  <defs>
    <clipPath id="glass"><circle cx="${CX}" cy="${CY}" r="${R}"/></clipPath>
    <filter id="upsample" x="-10%" y="-10%" width="120%" height="120%"><feGaussianBlur stdDeviation="7"/></filter>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="44" fill="#1b1e2e"/>
  <line x1="${(hx + 6).toFixed(1)}" y1="${(hy + 6).toFixed(1)}" x2="212" y2="212" stroke="#e8590c" stroke-width="30" stroke-linecap="round"/>
  <g clip-path="url(#glass)">
    <rect x="${CX - R}" y="${CY - R}" width="${2 * R}" height="${2 * R}" fill="${hex(0)}"/>
    <g filter="url(#upsample)">${cells.join('')}</g>
    <ellipse cx="${CX - 30}" cy="${CY - 36}" rx="26" ry="14" transform="rotate(-35 ${CX - 30} ${CY - 36})" fill="#ffffff" opacity="0.28"/>
  </g>
  <circle cx="${CX}" cy="${CY}" r="${R}" fill="none" stroke="#f1f3f5" stroke-width="14"/>
</svg>
`;
}

async function main(): Promise<void> {
  const out = path.join(ROOT, 'media', 'icon.png');
  await sharp(Buffer.from(iconSvg())).png({ compressionLevel: 9 }).toFile(out);
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
