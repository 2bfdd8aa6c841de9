/**
 * Which editor column a new explain panel opens in. Pure (columns are numbers, as vscode.ViewColumn), so it is
 * tested in plain Node.
 *
 * "Beside the active editor" is right for the first panel: the image (or the Explorer's editor) stays visible
 * next to its map. Once an explain panel is open, the active editor is often that panel itself (the user was
 * just looking at it, or clicked "Open" in the triage panel beside it), and "beside" it would open a third
 * column, then a fourth. So later panels join the column of the explain panel used most recently, as tabs.
 */

export interface OpenPanelColumn {
  /** The panel's column (vscode.WebviewPanel.viewColumn); undefined while it is not shown in any. */
  column: number | undefined;
  /** When the panel was last active (any increasing counter): the most recent one wins. */
  lastActive: number;
}

/** The column for a new explain panel: that of the most recently active open one, or undefined for "beside". */
export function columnForNewPanel(open: Iterable<OpenPanelColumn>): number | undefined {
  let best: OpenPanelColumn | undefined;
  for (const p of open) {
    if (p.column === undefined || p.column < 1) continue;
    if (!best || p.lastActive > best.lastActive) best = p;
  }
  return best?.column;
}
