/**
 * "Move to class X" for the triage panel, the parts that need no `vscode` (so they are tested in plain Node):
 * the classes the picker offers with their probabilities, which folder a class's images go to, a file name that
 * overwrites nothing, the text edit that relabels one sample in a CSV or JSON label file, and the row's scores
 * and flag for its new label. The panel turns the edits into a WorkspaceEdit, so the user can undo them.
 *
 * Matching follows the dataset reader (engine/scan/dataset.ts): a class folder is "X's folder" when the dataset's
 * class matcher maps its name to X (exact, then case- and separator-insensitive, then an ImageNet synonym), and a
 * label-file row names a sample when its path, resolved against the label file's folder, is the sample's file.
 */
import * as path from 'path';
import { makeClassMatcher } from '../engine/scan/dataset';
import { isFlagged, normalizedMargin, score, selfConfidence } from '../engine/scan/ranking';
import type { ScanScoreKind, TriageRow } from '../../shared/protocol';
import { formatPercent } from '../../shared/format';

/** Names Windows reserves for devices, whatever the extension. */
const RESERVED = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i;

/**
 * A folder name for a label that is valid on Windows, macOS and Linux: no path separators, no characters Windows
 * refuses (<>:"/\|?*, control characters), no trailing dots or spaces, not a device name, not empty.
 */
export function safeFolderName(label: string, index: number): string {
  let s = [...label].map((c) => (c.charCodeAt(0) < 0x20 || '<>:"/\\|?*'.includes(c) ? '_' : c)).join('');
  s = s.trim().replace(/[. ]+$/, '');
  if (s === '' || s === '.' || s === '..') s = `class_${index}`;
  if (RESERVED.test(s)) s = `${s}_`;
  return s.slice(0, 200);
}

/**
 * The class folder (a name inside the dataset root) for label index `target`: an existing folder the dataset's
 * class matcher maps to it, else the label made filesystem-safe. Hidden folders (.cam-lens) are never chosen.
 */
export function classFolderFor(existingFolders: readonly string[], labels: readonly string[], target: number): string {
  const match = makeClassMatcher([...labels]);
  const found = existingFolders.filter((f) => !f.startsWith('.')).sort().find((f) => match(f) === target);
  return found ?? safeFolderName(labels[target] ?? '', target);
}

/** `name` if free, else `stem-1.ext`, `stem-2.ext`, …: never an existing name. */
export function freeName(name: string, exists: (candidate: string) => boolean): string {
  if (!exists(name)) return name;
  const ext = path.extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let i = 1; i < 100000; i++) {
    const candidate = `${stem}-${i}${ext}`;
    if (!exists(candidate)) return candidate;
  }
  throw new Error(`no free file name like ${name}`);
}

/** Does a label-file path (as written) name the sample at `relPath` (dataset-relative, '/')? */
export function namesSample(root: string, written: string, relPath: string): boolean {
  const abs = path.resolve(root, written);
  return path.relative(root, abs).split(path.sep).join('/') === relPath;
}

/** A replacement of the characters [start, end) of a text. */
export interface TextEdit {
  start: number;
  end: number;
  text: string;
}

function csvQuote(s: string): string {
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A label as it is written into a label file: a CSV cell (quoted where needed) or a JSON string. */
export function labelText(kind: 'csv' | 'json', label: string): string {
  return kind === 'csv' ? csvQuote(label) : JSON.stringify(label);
}

/** Cells of one CSV line with their offsets in the line (quotes included in the raw span). */
function csvCells(line: string): { value: string; start: number; end: number }[] {
  const cells: { value: string; start: number; end: number }[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    let value = '';
    let quoted = false;
    while (i < line.length) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') {
          value += '"';
          i += 2;
          continue;
        }
        if (c === '"') quoted = false;
        else value += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') break;
      else value += c;
      i++;
    }
    cells.push({ value: value.trim(), start, end: i });
    if (i >= line.length) break;
    i++; // the comma
  }
  return cells;
}

/**
 * Edits that set the label of every row of a `path,label` CSV whose path satisfies `isSample` (the reader takes
 * the first two cells; a header line starting with "path" is skipped, as the reader does). Other cells, quoting
 * and line endings are left as they are.
 */
export function csvLabelEdits(text: string, isSample: (written: string) => boolean, label: string): TextEdit[] {
  const edits: TextEdit[] = [];
  let offset = 0;
  let first = true;
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() !== '') {
      const cells = csvCells(line);
      const header = first && cells[0].value.toLowerCase() === 'path';
      first = false;
      if (!header && cells.length >= 2 && cells[0].value !== '' && isSample(cells[0].value)) {
        edits.push({ start: offset + cells[1].start, end: offset + cells[1].end, text: labelText('csv', label) });
      }
    }
    offset += raw.length + 1;
  }
  return edits;
}

// A small JSON reader that keeps the offsets of strings, enough to rewrite one value in place.
type JsonNode =
  | { kind: 'object'; props: { key: string; value: JsonNode }[] }
  | { kind: 'array'; items: JsonNode[] }
  | { kind: 'string'; value: string; start: number; end: number }
  | { kind: 'other' };

class JsonReader {
  private i = 0;
  constructor(private readonly s: string) {}

  parse(): JsonNode {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) throw new SyntaxError(`unexpected text at ${this.i}`);
    return v;
  }

  private ws(): void {
    while (this.i < this.s.length && ' \t\r\n\uFEFF'.includes(this.s[this.i])) this.i++;
  }

  private value(): JsonNode {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(this.s.slice(this.i, this.i + 64));
    if (!m) throw new SyntaxError(`unexpected character at ${this.i}`);
    this.i += m[0].length;
    return { kind: 'other' };
  }

  private string(): JsonNode & { kind: 'string' } {
    const start = this.i;
    this.i++;
    while (this.i < this.s.length && this.s[this.i] !== '"') this.i += this.s[this.i] === '\\' ? 2 : 1;
    if (this.i >= this.s.length) throw new SyntaxError('unterminated string');
    this.i++;
    return { kind: 'string', value: JSON.parse(this.s.slice(start, this.i)) as string, start, end: this.i };
  }

  private expect(c: string): void {
    this.ws();
    if (this.s[this.i] !== c) throw new SyntaxError(`expected ${c} at ${this.i}`);
    this.i++;
  }

  private object(): JsonNode {
    this.i++;
    const props: { key: string; value: JsonNode }[] = [];
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return { kind: 'object', props };
    }
    for (;;) {
      this.ws();
      const key = this.string().value;
      this.expect(':');
      props.push({ key, value: this.value() });
      this.ws();
      if (this.s[this.i] === ',') {
        this.i++;
        continue;
      }
      this.expect('}');
      return { kind: 'object', props };
    }
  }

  private array(): JsonNode {
    this.i++;
    const items: JsonNode[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return { kind: 'array', items };
    }
    for (;;) {
      items.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') {
        this.i++;
        continue;
      }
      this.expect(']');
      return { kind: 'array', items };
    }
  }
}

/**
 * Edits that set the label of the sample in a JSON label file, in either form the reader accepts:
 * `[{ "path": …, "label": … }]` (every matching element) or `{ "<path>": "<label>" }` (every matching key).
 * Throws a SyntaxError when the text is not JSON (the user edited it since the scan).
 */
export function jsonLabelEdits(text: string, isSample: (written: string) => boolean, label: string): TextEdit[] {
  const root = new JsonReader(text).parse();
  const edits: TextEdit[] = [];
  const set = (v: JsonNode) => {
    if (v.kind === 'string') edits.push({ start: v.start, end: v.end, text: labelText('json', label) });
  };
  if (root.kind === 'array') {
    for (const item of root.items) {
      if (item.kind !== 'object') continue;
      const p = item.props.find((x) => x.key === 'path')?.value;
      if (p?.kind === 'string' && isSample(p.value)) {
        for (const x of item.props) if (x.key === 'label') set(x.value);
      }
    }
  } else if (root.kind === 'object') {
    for (const x of root.props) if (isSample(x.key)) set(x.value);
  }
  return edits;
}

// ---------------------------------------------------------------------------------------------------------
// The picker and the row after a move

/** One class of the "Move to class…" picker. */
export interface MoveChoice {
  index: number;
  label: string;
  /** The model's probability for the class, formatted as everywhere else ("34.6%", "<0.1%"), and "predicted". */
  description: string;
}

/**
 * The classes a sample can be moved to: every class but its given one, most likely first (ties by index), each
 * with the model's probability for it. `probs` holds every class's probability by label index.
 */
export function moveChoices(labels: readonly string[], probs: ArrayLike<number>, givenIndex: number, predictedIndex: number): MoveChoice[] {
  const p = (i: number) => (i < probs.length && Number.isFinite(probs[i]) ? probs[i] : 0);
  return labels
    .map((label, index) => ({ index, label }))
    .filter((c) => c.index !== givenIndex)
    .sort((a, b) => p(b.index) - p(a.index) || a.index - b.index)
    .map((c) => ({ ...c, description: `${formatPercent(p(c.index))}${c.index === predictedIndex ? ' · predicted' : ''}` }));
}

/**
 * The picker's placeholder: what the move does and how to take it back. VS Code's Ctrl+Z does not undo an
 * extension's WorkspaceEdit in the Explorer, so it names the panel's U and the notification's Undo instead.
 */
export function movePlaceholder(kind: 'folder' | 'csv' | 'json', labelFile: string): string {
  const what = kind === 'folder' ? 'move the image to that class folder' : `rewrite its label in ${path.basename(labelFile)}`;
  return `The right class: CAM Lens will ${what}. Undo with U in the panel, or Undo in the notification.`;
}

/** A row's label-quality numbers (protocol ScanRow): what changes with its given label. */
export type RowScores = Pick<TriageRow, 'selfConfidence' | 'normalizedMargin' | 'score' | 'flagged'>;

/**
 * The scores and the confident-learning flag of a sample for given label `given` (engine/scan/ranking.ts:
 * self-confidence p_given, normalized margin, the ranking score of `scoredBy`; flagged when confident learning
 * assigns it to another class). `probs`: every class's probability by label index. `thresholds`: the scan's
 * current per-class thresholds (+Infinity where no sample has that label); the thresholds themselves are the
 * scan's, not recomputed for the one relabelled sample (it moves one class average by one sample in n).
 * Without thresholds yet (no result has arrived), nothing is flagged.
 */
export function scoresFor(probs: Float32Array, given: number, scoredBy: ScanScoreKind, thresholds: Float64Array | undefined): RowScores {
  return {
    selfConfidence: selfConfidence(probs, given),
    normalizedMargin: normalizedMargin(probs, given),
    score: score(scoredBy, probs, given),
    flagged: thresholds !== undefined && thresholds.length >= probs.length ? isFlagged({ givenIndex: given, probs }, thresholds) : false,
  };
}

/**
 * Every class's probability by label index, from a prediction of all classes (any order), renormalised to sum
 * to 1 over the labelled classes as the scan does (engine/scan/scan.ts: a TF-Hub "background" output left out by
 * labelOffset takes its share along), so a moved row's scores compare with the scan's.
 */
export function probabilityVector(predictions: readonly { index: number; probability: number }[], numClasses: number): Float32Array {
  const out = new Float32Array(numClasses);
  for (const p of predictions) if (p.index >= 0 && p.index < numClasses && Number.isFinite(p.probability)) out[p.index] = p.probability;
  let sum = 0;
  for (const v of out) sum += v;
  if (sum > 0) for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * Per-class thresholds by label index from a report's `{ label: threshold | null }` (null: no sample had the
 * label, i.e. +Infinity). Labels missing from the record get +Infinity too.
 */
export function thresholdVector(labels: readonly string[], byLabel: Record<string, number | null>): Float64Array {
  return Float64Array.from(labels, (l) => {
    const t = byLabel[l];
    return typeof t === 'number' && Number.isFinite(t) ? t : Infinity;
  });
}

/**
 * Flags of the relabelled rows under new thresholds: confident learning's verdict for their current given label
 * (the worker still judges them by the label they were scanned with). Returns the seqs whose flag changed,
 * after setting it on the row.
 */
export function reflagMoved(
  rows: Iterable<TriageRow>,
  probsOf: (seq: number) => Float32Array | undefined,
  thresholds: Float64Array,
): { on: number[]; off: number[] } {
  const on: number[] = [];
  const off: number[] = [];
  for (const r of rows) {
    if (r.movedFrom === undefined) continue;
    const probs = probsOf(r.seq);
    if (!probs) continue;
    const flagged = isFlagged({ givenIndex: r.givenIndex, probs }, thresholds);
    if (flagged === r.flagged) continue;
    r.flagged = flagged;
    (flagged ? on : off).push(r.seq);
  }
  return { on, off };
}
