/**
 * Request-id bookkeeping for a panel. Pure (no DOM).
 *
 * The protocol promises exactly one reply per request, carrying the request's id. Requests are grouped in lanes
 * ('cam', 'export', ...): issuing a request supersedes the previous one of the same lane, whose reply, when it
 * arrives later, must be ignored. Otherwise a slow Score-CAM for the class the user clicked first would paint over
 * the fast Grad-CAM for the class they clicked second.
 *
 * Ids are positive integers, increasing for the webview's lifetime, and unique across lanes, so a reply is
 * matched by id alone and the lane is recovered from it.
 */
export class RequestTracker<Lane extends string> {
  private nextId = 1;
  /** Pending requests that are still the newest of their lane: id -> lane. */
  private readonly pending = new Map<number, Lane>();
  /** The newest id of each lane, pending or not. */
  private readonly latest = new Map<Lane, number>();

  /** A fresh id for a request in `lane`; any request still pending in that lane is superseded. */
  issue(lane: Lane): number {
    const id = this.nextId++;
    const previous = this.latest.get(lane);
    if (previous !== undefined) this.pending.delete(previous);
    this.latest.set(lane, id);
    this.pending.set(id, lane);
    return id;
  }

  /** The lane of a pending, current request; undefined for unknown, superseded or answered ids. */
  laneOf(id: number): Lane | undefined {
    return this.pending.get(id);
  }

  /** True while `id` is pending and the newest of its lane: progress for it should be shown. */
  isCurrent(id: number): boolean {
    return this.pending.has(id);
  }

  /**
   * Records the reply to `id`. Returns its lane when the reply should be acted on (the request was current), or
   * undefined when it must be ignored (superseded, answered before, or never issued).
   */
  settle(id: number): Lane | undefined {
    const lane = this.pending.get(id);
    if (lane !== undefined) this.pending.delete(id);
    return lane;
  }

  /** Is a request of `lane` waiting for its reply? */
  isBusy(lane: Lane): boolean {
    const id = this.latest.get(lane);
    return id !== undefined && this.pending.has(id);
  }

  /** Drops the pending request of `lane`, if any: its reply will be ignored (the user moved on). */
  cancel(lane: Lane): void {
    const id = this.latest.get(lane);
    if (id !== undefined) this.pending.delete(id);
  }

  /** Forgets every pending request (a new `panel/didInit`: replies to the old page state are meaningless). */
  reset(): void {
    this.pending.clear();
    this.latest.clear();
  }
}
