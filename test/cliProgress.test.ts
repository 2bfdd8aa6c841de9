/**
 * Progress of the CLI's long steps on stderr (#13 item 3): the printer on a fake stream and clock (a bar redrawn
 * in place on a terminal, plain lines otherwise, nothing under a second, nothing when disabled), and the built
 * CLI in a child process (stderr a pipe, so plain lines): a Score-CAM over every channel of a wide layer prints
 * its estimate and progress lines, and prints nothing on stderr with --json - or --quiet.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { CliProgress } from '../src/extension/cliProgress';
import { tempDir, writeModel } from './helpers/modelFiles';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

/** A stream that keeps what is written, and a clock moved by hand. */
function fake(isTTY: boolean): { stream: { isTTY: boolean; columns: number; write(s: string): boolean; text: string }; clock: { t: number } } {
  const stream = { isTTY, columns: 200, text: '', write(s: string) { this.text += s; return true; } };
  return { stream, clock: { t: 0 } };
}

describe('CLI progress printer', () => {
  it('prints nothing for a step that ends within a second', () => {
    for (const isTTY of [true, false]) {
      const { stream, clock } = fake(isTTY);
      const p = new CliProgress({ stream, enabled: true, now: () => clock.t });
      const on = p.task('Score-CAM', 'channels');
      for (let d = 0; d <= 32; d += 8) {
        clock.t += 150;
        on(d, 32);
      }
      p.end();
      assert.strictEqual(stream.text, '', `tty ${isTTY}`);
    }
  });

  it('draws one line in place on a terminal, with the count, the time left, and a newline at the end', () => {
    const { stream, clock } = fake(true);
    const p = new CliProgress({ stream, enabled: true, now: () => clock.t });
    const on = p.task('Score-CAM', 'channels');
    on(0, 100);
    for (let d = 10; d <= 100; d += 10) {
      clock.t += 500;
      on(d, 100);
    }
    const text = stream.text;
    assert.strictEqual(text.split('\n').length - 1, 1, 'a single line, finished once');
    assert.ok(text.endsWith('\n'));
    assert.ok(text.includes('\r'), 'redrawn with carriage returns');
    const frames = text.trimEnd().split('\r').filter(Boolean);
    assert.ok(frames.length >= 5, `${frames.length} frames`);
    // At 1.5 s, 30 of 100 done: 3.5 s left at that rate.
    assert.ok(frames.some((f) => /\[#{7}\.{17}\] Score-CAM: 30\/100 channels \(30%\), 1\.5 s, about 3\.5 s left/.test(f)), frames.join(' | '));
    assert.match(frames[frames.length - 1], /Score-CAM: 100\/100 channels \(100%\), done in 5\.0 s/);
  });

  it('writes plain lines otherwise: when the step passes a second, then every 10% or 2 s, and a last line', () => {
    const { stream, clock } = fake(false);
    const p = new CliProgress({ stream, enabled: true, now: () => clock.t });
    const on = p.task('Score-CAM', 'channels');
    on(0, 1000);
    for (let d = 10; d <= 1000; d += 10) {
      clock.t += 100;
      on(d, 1000);
    }
    const lines = stream.text.trimEnd().split('\n');
    assert.ok(!stream.text.includes('\r'), 'no carriage returns in a log');
    assert.match(lines[0], /^Score-CAM: 100\/1000 channels \(10%\), 1\.0 s, about 9\.0 s left$/);
    assert.match(lines[lines.length - 1], /^Score-CAM: 1000\/1000 channels \(100%\), done in 10 s$/);
    // 10% steps: 10, 20, ... 90 (the 2 s rule never comes first here), then the last line.
    assert.strictEqual(lines.length, 10, lines.join('\n'));
  });

  it('writes a plain line every 2 s when 10% takes longer', () => {
    const { stream, clock } = fake(false);
    const p = new CliProgress({ stream, enabled: true, now: () => clock.t });
    const on = p.task('Scan', 'images');
    on(0, 1000);
    for (let d = 1; d <= 20; d++) {
      clock.t += 500;
      on(d, 1000);
    }
    p.stop();
    // Shown at 1 s (d = 2), then at 3, 5, 7, 9 s: every 2 s.
    assert.deepStrictEqual(stream.text.trimEnd().split('\n').map((l) => /: (\d+)\//.exec(l)?.[1]), ['2', '6', '10', '14', '18']);
  });

  it('prints nothing at all when disabled, notes included', () => {
    for (const isTTY of [true, false]) {
      const { stream, clock } = fake(isTTY);
      const p = new CliProgress({ stream, enabled: false, now: () => clock.t });
      p.note('Score-CAM at feat: all 2048 channels, about 9 min');
      const on = p.task('Score-CAM', 'channels');
      for (let d = 0; d <= 100; d++) {
        clock.t += 1000;
        on(d, 100);
      }
      p.end();
      assert.strictEqual(stream.text, '');
    }
  });

  it('puts a note on a line of its own above a bar, and a failed step only finishes its line', () => {
    const { stream, clock } = fake(true);
    const p = new CliProgress({ stream, enabled: true, now: () => clock.t });
    const on = p.task('Score-CAM', 'channels');
    clock.t = 1500;
    on(10, 100);
    p.note('a note');
    assert.ok(/\r {20,}\ra note\n\r\[/.test(stream.text), JSON.stringify(stream.text));
    p.stop();
    assert.ok(stream.text.endsWith('\n') && !stream.text.includes('done in'));
  });
});

// ---------------------------------------------------------------------------------------------------------
// The built CLI

function newestSource(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

function run(args: string[]): { code: number; stdout: string; stderr: string; ms: number } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 240000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t };
}

/**
 * A layer wide enough that scoring all of it takes seconds on the cpu backend: 32x32 input, two 3x3
 * convolutions (seeded) to 'feat' [16, 16, 128], GAP, dense(5, softmax).
 */
function wideModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [32, 32, 3], name: 'img' });
  const c1 = tfl.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: tfl.initializers.heNormal({ seed: 1 }), biasInitializer: tfl.initializers.constant({ value: 0.1 }) }).apply(input) as tfl.SymbolicTensor;
  const c2 = tfl.layers.conv2d({ filters: 128, kernelSize: 3, strides: 2, padding: 'same', name: 'c2', kernelInitializer: tfl.initializers.heNormal({ seed: 2 }), biasInitializer: tfl.initializers.constant({ value: 0.1 }) }).apply(c1) as tfl.SymbolicTensor;
  const feat = tfl.layers.activation({ activation: 'relu', name: 'feat' }).apply(c2) as tfl.SymbolicTensor;
  const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 5, activation: 'softmax', name: 'fc', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(g) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('cam-lens progress on stderr', function () {
  let modelJson: string;
  let image: string;
  let dir: string;
  before(async function () {
    if (!fs.existsSync(CLI) || newestSource(path.join(ROOT, 'src')) > fs.statSync(CLI).mtimeMs) {
      const b = spawnSync(process.execPath, [path.join(ROOT, 'esbuild.js')], { cwd: ROOT, encoding: 'utf8' });
      assert.strictEqual(b.status, 0, b.stderr);
    }
    await initBackend('cpu');
    dir = tempDir();
    const m = wideModel();
    modelJson = (await writeModel(m, path.join(dir, 'wide'), { labels: ['a', 'b', 'c', 'd', 'e'], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    image = path.join(dir, 'photo.png');
    const px = Buffer.alloc(48 * 40 * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 53 + (i >> 7) * 11) % 256;
    await sharp(px, { raw: { width: 48, height: 40, channels: 3 } }).png().toFile(image);
    assert.ok(tf.getBackend());
  });

  const scorecamAll = ['cam', '--method', 'scorecam', '--channels', 'all', '--workers', '0', '--backend', 'cpu', '--batch-size', '4'];

  it('a long Score-CAM (every channel) prints its estimate first, then plain progress lines, on stderr', () => {
    const r = run([...scorecamAll, '--model', modelJson, '--image', image]);
    assert.strictEqual(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.ok(!r.stderr.includes('\r'), 'stderr is a pipe: plain lines, no bar');
    assert.match(lines[0], /^Score-CAM at feat: all \d+ channels( \(\d+ constant skipped\))?, one forward pass each: about \d+(\.\d)? (s|min \d\d s) \(a forward pass takes (\d+ ms|\d+\.\d s) here\)$/);
    const usable = Number(/all (\d+) channels/.exec(lines[0])?.[1]);
    assert.ok(usable > 64, `${usable} channels to score`);
    // The run takes seconds, so progress lines follow, ending with the last one.
    assert.ok(r.ms > 2000, `the run took ${r.ms.toFixed(0)} ms: too short to test progress`);
    const progress = lines.slice(1);
    assert.ok(progress.length >= 2, r.stderr);
    for (const l of progress.slice(0, -1)) assert.match(l, new RegExp(`^Score-CAM: \\d+/${usable} channels \\(\\d+%\\), \\d+(\\.\\d)? s(, about .+ left)?$`));
    assert.match(progress[progress.length - 1], new RegExp(`^Score-CAM: ${usable}/${usable} channels \\(100%\\), done in `));
    // stdout keeps its one human line, which names the channels scored.
    assert.match(r.stdout, new RegExp(`^Score-CAM for ".+" \\(.+%\\) at feat, all ${usable} channels.*, 16x16 map, cpu, `));
  });

  it('prints nothing on stderr with --json - (the JSON on stdout carries the details), nor with --quiet', () => {
    const j = run([...scorecamAll, '--model', modelJson, '--image', image, '--json', '-']);
    assert.strictEqual(j.code, 0, j.stderr);
    assert.strictEqual(j.stderr, '');
    const out = JSON.parse(j.stdout);
    assert.match(out.details.note, /^all \d+ channels/);
    assert.strictEqual(out.details.channels.by, 'all');
    assert.strictEqual(out.details.channels.scored, out.details.channels.usable);
    assert.strictEqual(out.details.channels.total, 128);
    assert.ok(j.ms > 2000, `the run took ${j.ms.toFixed(0)} ms: long enough to have printed progress`);

    const file = path.join(dir, 'out.json');
    const q = run([...scorecamAll, '--model', modelJson, '--image', image, '--json', file, '--quiet']);
    assert.strictEqual(q.code, 0, q.stderr);
    assert.strictEqual(q.stderr, '');
    assert.ok(q.stdout.startsWith('Score-CAM for '), 'the human line still goes to stdout');
    assert.strictEqual(JSON.parse(fs.readFileSync(file, 'utf8')).details.channels.by, 'all');
  });

  it('the default Score-CAM scores 32 channels by mean activation, and says so', () => {
    const r = run(['cam', '--method', 'scorecam', '--workers', '0', '--backend', 'cpu', '--model', modelJson, '--image', image, '--json', '-']);
    assert.strictEqual(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout).details;
    assert.strictEqual(d.note, 'top 32 of 128 channels by mean activation');
    assert.deepStrictEqual([d.channels.scored, d.channels.total, d.channels.by], [32, 128, 'mean']);
    assert.ok(d.channels.allMs > d.channels.ms, 'the full method is estimated to take longer');
  });

  it('refuses a bad --channels as a usage error (exit 2)', () => {
    const base = ['cam', '--model', modelJson, '--image', image];
    for (const [args, message] of [
      [['--method', 'scorecam', '--channels', 'many'], /--channels must be all or an integer from 0 \(all\) to 1048576, got "many"/],
      [['--method', 'scorecam', '--channels', '-3'], /--channels/],
      [['--method', 'scorecam', '--channels', '4', '--top-channels', '4'], /--top-channels is the older name of --channels: give one of them/],
      [['--method', 'gradcam', '--channels', '4'], /--channels applies to --method scorecam and ablationcam only/],
      [['--quiet=yes'], /--quiet takes no value/],
    ] as const) {
      const r = run([...base, ...args]);
      assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
