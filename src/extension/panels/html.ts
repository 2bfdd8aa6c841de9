/**
 * The HTML of the CAM Lens webview panels. Pure (no `vscode`, no DOM): the panel code passes in what only the host
 * knows (the webview's CSP source, the script and stylesheet URIs, a fresh nonce) and gets the page back, so the
 * same page is served to headless Chromium by the webview tests.
 *
 * Security model (STYLE.md "Webview", after VS Code's media-preview extension):
 *   default-src 'none'                     everything not listed below is refused
 *   script-src 'nonce-N'                   only our bundle, which carries the per-render nonce; no inline handlers,
 *                                          no eval (no 'unsafe-eval'), no remote scripts
 *   style-src <cspSource>                  only our stylesheets from the extension's media folder. The web
 *                                          components style their shadow roots with constructed stylesheets
 *                                          (adoptedStyleSheets) and the scripts set styles through the CSSOM; CSP
 *                                          restricts neither, so no 'unsafe-inline' is needed
 *   img-src <cspSource> data: blob:        the image being explained (webview URI, or a data: URI the host made
 *                                          for formats the browser cannot show)
 *   font-src <cspSource>                   bundled fonts only
 * Nothing remote, no connect-src: the webview talks to the host by postMessage only.
 *
 * The page is a static skeleton carrying every element of the stable DOM contract (ids the end-to-end tests rely
 * on); the bundle fills it in when the host sends `panel/didInit`. All dynamic text is set by the bundle with
 * textContent, so nothing the host sends is ever parsed as HTML.
 */

export type PanelKind = 'explain' | 'inspector' | 'triage' | 'strategies' | 'compare';

export interface PanelHtmlOptions {
  /** `webview.cspSource`, e.g. `https://*.vscode-cdn.net`. */
  cspSource: string;
  /** Fresh per render (`createNonce()`); at least 16 characters of [A-Za-z0-9+/=_-]. */
  nonce: string;
  /** The panel's bundle, `dist/webview-<kind>.js`, as a webview URI. */
  scriptUri: string;
  /** Stylesheets as webview URIs, in cascade order (media/common.css, then the panel's own). */
  styleUris: readonly string[];
  /** The document title (the tab title is set by the host). */
  title: string;
  kind: PanelKind;
}

/** 32 characters from a cryptographic RNG (base64url alphabet): enough that a nonce cannot be guessed. */
export function createNonce(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += alphabet[b & 63];
  return s;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/**
 * Refuses values that could break out of the CSP header or an attribute: a nonce outside the base64(url) alphabet,
 * a CSP source containing ';', ',', quotes or control characters. These come from VS Code, so failing loudly is
 * right: it means a programming error, not user input.
 */
function checkOptions(o: PanelHtmlOptions): void {
  if (!/^[A-Za-z0-9+/=_-]{16,}$/.test(o.nonce)) {
    throw new RangeError(`Panel HTML: the nonce must be 16+ base64 characters, got ${JSON.stringify(o.nonce)}`);
  }
  // Browser-hosted VS Code (code-server, vscode.dev) gives "'self' https://*.vscode-cdn.net": the quoted
  // keyword 'self' is legitimate; any other quote, ';' or ',' could end the directive.
  const unquoted = o.cspSource.replace(/'self'/g, '');
  if (!o.cspSource || /[;,'"]/.test(unquoted) || [...o.cspSource].some((c) => c.charCodeAt(0) < 0x20)) {
    throw new RangeError(`Panel HTML: unusable CSP source ${JSON.stringify(o.cspSource)}`);
  }
  if (o.kind !== 'explain' && o.kind !== 'inspector' && o.kind !== 'triage' && o.kind !== 'strategies' && o.kind !== 'compare') {
    throw new RangeError(`Panel HTML: unknown panel kind ${JSON.stringify(o.kind)}; expected explain, inspector, triage, strategies or compare`);
  }
}

/** The Content-Security-Policy of a panel (see the file comment for why each directive is what it is). */
export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource}`,
    `img-src ${cspSource} data: blob:`,
    `font-src ${cspSource}`,
  ].join('; ') + ';';
}

/** A labelled select. Options are filled by the bundle; the label is a native <label> for screen readers. */
function select(id: string, label: string): string {
  return `<div class="field"><label for="${id}">${label}</label>` +
    `<vscode-single-select id="${id}" aria-label="${label}"></vscode-single-select></div>`;
}

const ERROR_REGION =
  `<div id="error" class="error" role="alert" hidden>` +
  `<p class="error-message"></p><p class="error-hint"></p></div>`;

function explainBody(): string {
  return `
<header class="panel-header">
  <h1 id="title">Class Activation Map</h1>
  <div class="model-line">
    <span class="key">Model</span> <span id="model-name" class="value">…</span>
    <span class="key">Backend</span> <span id="backend" class="value">…</span>
    <vscode-button id="change-model" secondary>Change model…</vscode-button>
    <vscode-button id="compare-model" secondary title="Both models' maps of this image side by side, their difference and rank correlation">Compare with Another Model…</vscode-button>
  </div>
</header>
${ERROR_REGION}
<main class="explain-layout">
  <section class="viewer" aria-label="Image and heatmap">
    <div id="stage" class="stage" tabindex="0" aria-label="Image with heatmap; arrow keys move the probe" aria-describedby="readout">
      <img id="image" alt="" draggable="false">
      <canvas id="canvas" data-state="empty" aria-hidden="true"></canvas>
      <div id="probe" class="probe" hidden></div>
      <p id="image-note" class="image-note" hidden></p>
      <div id="progress" class="progress stage-progress" role="status" hidden>
        <vscode-progress-bar aria-label="Computing the map"></vscode-progress-bar>
        <span class="progress-text"></span>
        <vscode-button id="cancel-cam" secondary hidden>Cancel</vscode-button>
      </div>
    </div>
    <p id="status" class="status" aria-live="polite"></p>
    <p id="map-legend" class="hint-text map-legend" hidden></p>
    <p id="timings" class="hint-text timings" hidden></p>
    <p id="scorecam-full" class="scorecam-full" hidden><vscode-button id="score-all" secondary></vscode-button></p>
    <p id="readout" class="readout">Point at the image to read the heat value.</p>
    <p id="notice" class="notice" aria-live="polite"></p>
  </section>
  <aside class="sidebar">
    <section class="controls" aria-label="Method and display">
      <div id="output-field" class="field" hidden><label for="output">Output</label><vscode-single-select id="output" aria-label="Output"></vscode-single-select></div>
      <div id="method-family" class="field method-family" role="radiogroup" aria-label="Kind of method" hidden>
        <label title="Class activation maps: where at a layer the evidence for the class lies"><input type="radio" name="method-family" value="cam" aria-label="Class activation maps" checked><span class="long">Class activation maps</span><span class="short">CAM</span></label>
        <label title="Pixel saliency: which input pixels the class score is sensitive to"><input type="radio" name="method-family" value="pixel" aria-label="Pixel saliency"><span class="long">Pixel saliency</span><span class="short">Pixels</span></label>
      </div>
      ${select('method', 'Method')}
      <div id="layer-field" class="field">
        <div class="label-row"><label for="layer">Target layer</label><vscode-checkbox id="multi-layer" label="Several" title="Average the maps of several layers"></vscode-checkbox></div>
        <vscode-single-select id="layer" aria-label="Target layer"></vscode-single-select>
        <vscode-multi-select id="layers" aria-label="Target layers, maps averaged" hidden></vscode-multi-select>
      </div>
      <p id="layer-note" class="hint-text" hidden></p>
      <details id="method-options" class="method-options" hidden>
        <summary>Options <span id="options-summary" class="hint-text"></span></summary>
        <div id="options-fields" class="options-fields"></div>
      </details>
      ${select('preprocess', 'Preprocessing')}
      <p id="preprocess-note" class="hint-text" hidden></p>
      <p id="channels-note" class="hint-text" hidden></p>
      ${select('colormap', 'Colormap')}
      <div class="field">
        <label for="opacity">Opacity <span id="opacity-value" class="hint-text"></span></label>
        <input id="opacity" type="range" min="0" max="1" step="0.05" value="0.5">
      </div>
      <div class="field">
        <vscode-checkbox id="overlay-toggle" toggle checked label="Show heatmap overlay"></vscode-checkbox>
      </div>
      <div class="buttons">
        <vscode-button id="export-png" disabled>Export PNG</vscode-button>
        <vscode-button id="export-json" secondary disabled>Export JSON</vscode-button>
      </div>
    </section>
    <section id="dicom" class="controls dicom" aria-labelledby="dicom-heading" hidden>
      <h2 id="dicom-heading">DICOM</h2>
      <div id="dicom-frame-field" class="field" hidden><label for="dicom-frame">Frame</label><vscode-single-select id="dicom-frame" aria-label="Frame"></vscode-single-select></div>
      <div id="dicom-window-field" class="field"><label for="dicom-window">Window</label><vscode-single-select id="dicom-window" aria-label="Window"></vscode-single-select></div>
      <div id="dicom-custom" class="field dicom-custom">
        <label for="dicom-center">Centre</label><input id="dicom-center" type="number" step="any" aria-label="Window centre">
        <label for="dicom-width">Width</label><input id="dicom-width" type="number" min="1" step="any" aria-label="Window width">
        <vscode-button id="dicom-apply" secondary>Apply</vscode-button>
      </div>
      <p id="dicom-drag-hint" class="hint-text">Drag on the image to set the window, as in DICOM viewers: right widens it, down raises the centre.</p>
      <p id="dicom-fed" class="dicom-fed" aria-live="polite"></p>
      <p id="dicom-model-note" class="hint-text" hidden></p>
      <ol id="dicom-path" class="dicom-path" aria-label="From stored values to the model's pixels"></ol>
    </section>
    <section class="classes" aria-labelledby="predictions-heading">
      <h2 id="predictions-heading">Top predictions</h2>
      <p id="labels-note" class="hint-text" hidden></p>
      <p id="class-note" class="class-note" hidden></p>
      <ul id="predictions" class="listbox" role="listbox" aria-labelledby="predictions-heading" aria-describedby="class-note"></ul>
    </section>
    <section class="classes" aria-labelledby="class-list-heading">
      <h2 id="class-list-heading">Why not another class?</h2>
      <input id="class-search" class="search" type="search" placeholder="Filter classes by name or index"
        aria-label="Filter classes" aria-controls="class-list" autocomplete="off" spellcheck="false">
      <ul id="class-list" class="listbox class-list" role="listbox" aria-labelledby="class-list-heading" aria-describedby="class-note"></ul>
      <p id="class-count" class="hint-text"></p>
    </section>
  </aside>
</main>`;
}

function inspectorBody(): string {
  return `
<header class="panel-header">
  <h1 id="title">Model layers</h1>
  <div class="model-line">
    <span id="model-name" class="value">…</span>
    <span id="model-summary" class="hint-text"></span>
    <span class="key">Backend</span> <span id="backend" class="value">…</span>
    <vscode-button id="use-model">Use this model</vscode-button>
  </div>
</header>
${ERROR_REGION}
<p id="notice" class="notice" aria-live="polite"></p>
<main class="inspector-layout">
  <section class="layers-pane" aria-labelledby="layers-heading">
    <h2 id="layers-heading">Layers</h2>
    <div class="table-scroll">
      <table id="layers" class="layers" role="grid" aria-labelledby="layers-heading">
        <thead><tr><th scope="col">Name</th><th scope="col">Class</th><th scope="col">Output shape</th>
          <th scope="col" class="num">Parameters</th><th scope="col">Inbound</th></tr></thead>
        <tbody id="layer-rows"></tbody>
      </table>
    </div>
  </section>
  <section class="features-pane" aria-labelledby="features-heading">
    <h2 id="features-heading">Feature maps</h2>
    <div class="image-line">
      <vscode-button id="choose-image" secondary>Choose image…</vscode-button>
      <img id="image-thumb" class="thumb" alt="" hidden>
      <span id="image-name" class="hint-text">No image chosen.</span>
    </div>
    <div class="feature-controls">
      ${select('class', 'Class')}
      ${select('sort', 'Sort channels by')}
      ${select('feature-colormap', 'Colours')}
    </div>
    <div id="progress" class="progress" role="status" hidden>
      <vscode-progress-bar aria-label="Computing feature maps"></vscode-progress-bar>
      <span class="progress-text"></span>
    </div>
    <p id="feature-status" class="status" aria-live="polite">Choose an image, then a layer marked “spatial”.</p>
    <div id="channel-detail" class="channel-detail" hidden>
      <canvas id="channel-canvas"></canvas>
      <div class="channel-info">
        <p id="channel-stats"></p>
        <vscode-button id="close-detail" secondary>Close</vscode-button>
      </div>
    </div>
    <div id="feature-grid" class="feature-grid" role="grid" aria-label="Channels"></div>
  </section>
</main>`;
}

/** One header count: `<dt>` label, `<dd id>` value (filled by the bundle). */
function count(id: string, label: string, extra = ''): string {
  return `<div class="count${extra}"><dt>${label}</dt><dd id="${id}">–</dd></div>`;
}

/** One heatmap of the selected sample: the image with its map on a canvas on top, and a caption. */
function heatFigure(which: 'given' | 'predicted', title: string): string {
  return `<figure class="heat-figure">
      <div id="stage-${which}" class="stage heat-stage" data-state="empty">
        <img id="img-${which}" alt="" draggable="false">
        <canvas id="heat-${which}" data-state="empty" aria-hidden="true"></canvas>
      </div>
      <figcaption><span class="key">${title}</span> <span id="heat-${which}-label" class="value"></span></figcaption>
    </figure>`;
}

/**
 * The triage panel ("Find Likely Mislabeled Samples"). Stable DOM contract for the end-to-end tests:
 * rows are `#rows [data-path]` (dataset-relative path; only rows near the visible part exist, the list is
 * virtualised), the selected one `[aria-selected="true"]`; counts `#count-*`; buttons `#cancel-scan`, `#save-csv`,
 * `#save-json`, `#rescan`, `#open-sample`, `#mark-correct`, `#move-sample`, `#undo-move`; heatmaps `#heat-given`, `#heat-predicted`.
 */
function triageBody(): string {
  return `
<header class="panel-header">
  <h1 id="title">Likely mislabeled samples</h1>
  <div class="model-line">
    <span class="key">Data</span> <span id="data-name" class="value">…</span>
    <span class="key">Model</span> <span id="model-name" class="value">…</span>
    <span class="key">Ranked by</span> <span id="scored-by" class="value">…</span>
  </div>
  <dl id="counts" class="counts" aria-label="Counts">
    ${count('count-images', 'Images')}
    ${count('count-scanned', 'Scanned')}
    ${count('count-flagged', 'Flagged', ' flagged')}
    ${count('count-failed', 'Unreadable')}
    ${count('count-reviewed', 'Confirmed (hidden)')}
    ${count('count-unmatched', 'Unmatched class images')}
    ${count('count-non-image', 'Non-image files')}
    ${count('count-missing', 'Missing files')}
  </dl>
  <p id="unmatched-classes" class="hint-text" hidden></p>
  <p id="failures" class="hint-text" hidden></p>
  <div class="status-slot">
    <div id="progress" class="progress" role="status" hidden>
      <vscode-progress-bar aria-label="Scanning the dataset"></vscode-progress-bar>
      <span class="progress-text"></span>
      <vscode-button id="cancel-scan" secondary>Cancel</vscode-button>
    </div>
    <p id="scan-status" class="status" aria-live="polite"></p>
  </div>
  <div id="output-field" class="field" hidden><label for="output">Output</label><vscode-single-select id="output" aria-label="Output"></vscode-single-select></div>
  <div class="buttons">
    <vscode-button id="save-csv" disabled>Save CSV…</vscode-button>
    <vscode-button id="save-json" secondary disabled>Save JSON…</vscode-button>
    <vscode-button id="rescan" secondary disabled>Rescan</vscode-button>
    <vscode-button id="show-strategies" secondary disabled title="Per class, the clusters of the model's maps over this dataset">Show model strategies</vscode-button>
  </div>
</header>
${ERROR_REGION}
<main class="triage-layout">
  <section class="list-pane" aria-labelledby="rows-heading">
    <h2 id="rows-heading">Samples, most doubtful first</h2>
    <div class="filters">
      ${select('given-filter', 'Given label')}
      ${select('predicted-filter', 'Predicted label')}
      <div class="field flagged-field">
        <vscode-checkbox id="flagged-only" label="Flagged only"></vscode-checkbox>
      </div>
    </div>
    <p id="row-count" class="hint-text" aria-live="polite"></p>
    <div id="rows" class="rows" role="listbox" tabindex="0" aria-labelledby="rows-heading"
      aria-describedby="keys-help"><div id="rows-spacer" class="rows-spacer"></div></div>
    <p id="empty-note" class="hint-text" hidden></p>
    <p id="keys-help" class="hint-text">↑/↓ move · Enter open in the explain panel · C label is correct · M move to class… · U undo the move</p>
  </section>
  <section class="detail-pane" aria-labelledby="detail-title">
    <h2 id="detail-title">No sample selected</h2>
    <p id="detail-meta" class="detail-meta"></p>
    <div class="heat-pair">
      ${heatFigure('given', 'Given')}
      ${heatFigure('predicted', 'Predicted')}
    </div>
    <div class="status-slot">
      <div id="pair-progress" class="progress" role="status" hidden>
        <vscode-progress-bar aria-label="Computing the heatmaps"></vscode-progress-bar>
        <span class="progress-text"></span>
      </div>
      <p id="pair-status" class="status" aria-live="polite"></p>
    </div>
    <div class="buttons">
      <vscode-button id="open-sample" secondary disabled>Open (Enter)</vscode-button>
      <vscode-button id="mark-correct" secondary disabled>Label is correct (C)</vscode-button>
      <vscode-button id="move-sample" secondary disabled>Move to class… (M)</vscode-button>
      <vscode-button id="undo-move" secondary disabled>Undo move (U)</vscode-button>
    </div>
    <p id="notice" class="notice" aria-live="polite"></p>
  </section>
</main>`;
}

/**
 * The strategies panel ("Show Model Strategies", issue #14). Stable DOM contract for the end-to-end tests: options
 * `#method`, `#layer`, `#clusters`, `#class-filter`, `#run`; progress `#progress` with `#cancel-run`; one
 * `#classes .class-section[data-class]` per class (label index) holding its average map `canvas.class-average` and
 * its cluster cards `.cluster-card[data-cluster]` (the card's `.card-head` toggles its details; hints
 * `.hint[data-hint]`; members `.member[data-path]` open the explain panel).
 */
function strategiesBody(): string {
  return `
<header class="panel-header">
  <h1 id="title">Model strategies</h1>
  <div class="model-line">
    <span class="key">Data</span> <span id="data-name" class="value">…</span>
    <span class="key">Model</span> <span id="model-name" class="value">…</span>
  </div>
  <div class="strategy-options">
    ${select('method', 'Method')}
    ${select('layer', 'Target layer')}
    ${select('clusters', 'Clusters per class')}
    ${select('class-filter', 'Classes')}
    <div class="field run-field"><vscode-button id="run">Analyse</vscode-button></div>
  </div>
  <div class="status-slot">
    <div id="progress" class="progress" role="status" hidden>
      <vscode-progress-bar aria-label="Analysing the dataset"></vscode-progress-bar>
      <span class="progress-text"></span>
      <vscode-button id="cancel-run" secondary>Cancel</vscode-button>
    </div>
    <p id="run-status" class="status" aria-live="polite"></p>
  </div>
  <p id="failures" class="hint-text" hidden></p>
</header>
${ERROR_REGION}
<main id="classes" class="strategy-classes" aria-label="Classes and their strategies"></main>
<p id="empty-note" class="hint-text" hidden></p>
<p id="keys-help" class="hint-text">Tab moves between cards and thumbnails · Enter or Space on a card shows its rules and distances · Enter or Space on a thumbnail opens it in the explain panel</p>
<p id="notice" class="notice" aria-live="polite"></p>`;
}

/** One model's side of the compare panel (or the difference): a stage with the image and its map, a caption. */
function compareFigure(id: string, label: string): string {
  return `<figure class="compare-figure" aria-labelledby="caption-${id}">
    <figcaption id="caption-${id}" class="compare-caption">${label}</figcaption>
    <div class="stage compare-stage" id="stage-${id}"><img id="image-${id}" alt="" draggable="false"><canvas id="canvas-${id}" aria-hidden="true"></canvas></div>
    <ol id="predictions-${id}" class="compare-predictions" aria-label="${label}: top classes"></ol>
  </figure>`;
}

/**
 * The compare panel (two models side by side, issue #14 item 4). Stable DOM contract: #model-a, #model-b,
 * #source-name, #method, #class, #opacity, #pair with #stage-a/#stage-b/#stage-diff (each an img and a canvas),
 * #summary (correlation, mean |A - B|, top-1), and in folder mode #folder with #rows (one option per sample, most
 * disagreeing first), #folder-status, #folder-cancel, #folder-rerun.
 */
function compareBody(): string {
  return `
<header class="panel-header">
  <h1 id="title">Compare models</h1>
  <div class="model-line">
    <span class="key">A</span> <span id="model-a" class="value">…</span>
    <span class="key">B</span> <span id="model-b" class="value">…</span>
    <span class="key">On</span> <span id="source-name" class="value">…</span>
  </div>
  <div class="controls compare-controls">
    ${select('method', 'Method')}
    ${select('class', 'Class')}
    <div class="field"><label for="opacity">Opacity</label><input id="opacity" type="range" min="0" max="1" step="0.05" value="0.5"></div>
  </div>
</header>
${ERROR_REGION}
<section id="folder" class="compare-folder" aria-label="Samples, most disagreeing first" hidden>
  <div class="folder-bar">
    <p id="folder-status" class="status" aria-live="polite"></p>
    <div id="folder-progress" class="progress" role="status" hidden><vscode-progress-bar aria-label="Comparing the folder"></vscode-progress-bar><span class="progress-text"></span></div>
    <vscode-button id="folder-cancel" secondary hidden>Cancel</vscode-button>
    <vscode-button id="folder-rerun" secondary>Run again</vscode-button>
  </div>
  <ol id="rows" class="compare-rows" role="listbox" aria-label="Samples, most disagreeing first (top-1 differs, then lowest map correlation)"></ol>
  <p class="hint-text">Up and Down move through the samples · Enter or Space shows one side by side</p>
</section>
<main id="pair" class="compare-pair" aria-label="Two models side by side">
  <p id="image-name" class="compare-image-name"></p>
  <div class="compare-figures">
    ${compareFigure('a', 'Model A')}
    ${compareFigure('b', 'Model B')}
    ${compareFigure('diff', 'Difference A − B')}
  </div>
  <p id="summary" class="compare-summary" aria-live="polite"></p>
  <p class="hint-text">Difference: red where model A looks more, blue where model B does, neutral where they agree.</p>
  <div id="progress" class="progress" role="status" hidden><vscode-progress-bar aria-label="Computing the maps"></vscode-progress-bar><span class="progress-text"></span></div>
  <p id="status" class="status" aria-live="polite"></p>
</main>`;
}

/** The full HTML document of a panel. */
export function buildPanelHtml(o: PanelHtmlOptions): string {
  checkOptions(o);
  const styles = o.styleUris.map((u) => `<link rel="stylesheet" href="${escapeHtml(u)}">`).join('\n  ');
  const body = o.kind === 'explain' ? explainBody() : o.kind === 'inspector' ? inspectorBody() : o.kind === 'triage' ? triageBody()
    : o.kind === 'compare' ? compareBody() : strategiesBody();
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta http-equiv="Content-Security-Policy" content="${escapeHtml(contentSecurityPolicy(o.cspSource, o.nonce))}">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(o.title)}</title>
  ${styles}
</head>
<body class="cam-lens ${o.kind}" data-kind="${o.kind}">
${body}
<script nonce="${o.nonce}" src="${escapeHtml(o.scriptUri)}"></script>
</body>
</html>
`;
}
