/**
 * The uncommitted records of one partition when its records are handled side by side (`ordering` `key`
 * or `none`). Records enter in offset order and finish in any order. Contracts:
 * - the commit position is one past the last record of the finished prefix, i.e. the lowest unfinished
 *   offset (or one past the highest finished when nothing is unfinished): a commit never passes an
 *   unfinished record, so a crash redelivers at most the window and loses nothing;
 * - `size` counts records accepted and not yet committed (finished ones included until their commit is
 *   confirmed): the bound on what a crash can bring back;
 * - an offset at or below the highest accepted one is refused: after a rebalance that kept this
 *   partition the consumer may fetch again from the committed offset, and those records are known here
 *   (waiting, running or finished), so they are not handled twice.
 */
export class OffsetWindow {
  private entries: { readonly offset: number; done: boolean }[] = [];
  /** Index of the first entry not confirmed committed. */
  private base = 0;
  /** Entries [base, finishedUpTo) are finished. */
  private finishedUpTo = 0;
  private readonly byOffset = new Map<number, { readonly offset: number; done: boolean }>();
  private highest = -1;
  /** True once the partition was revoked from this member: nothing of it may be committed any more. */
  revoked = false;
  /** True while this member paused the partition's fetching because the window is full. */
  paused = false;

  /** Takes a fetched record in; false when it is already known (a fetch again after a rebalance). */
  accept(offset: number): boolean {
    if (offset <= this.highest) return false;
    this.highest = offset;
    const entry = { offset, done: false };
    this.entries.push(entry);
    this.byOffset.set(offset, entry);
    return true;
  }

  /** Marks `offset` finished. Returns the new commit position when the finished prefix grew, else undefined. */
  finish(offset: number): number | undefined {
    const entry = this.byOffset.get(offset);
    if (!entry || entry.done) return undefined;
    entry.done = true;
    this.byOffset.delete(offset);
    const before = this.finishedUpTo;
    while (this.finishedUpTo < this.entries.length && this.entries[this.finishedUpTo]!.done) this.finishedUpTo++;
    return this.finishedUpTo > before ? this.entries[this.finishedUpTo - 1]!.offset + 1 : undefined;
  }

  /** The broker confirmed a commit at `position`: the records below it leave the window. */
  committed(position: number): void {
    while (this.base < this.finishedUpTo && this.entries[this.base]!.offset < position) this.base++;
    if (this.base > 1024 && this.base * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.base);
      this.finishedUpTo -= this.base;
      this.base = 0;
    }
  }

  /** Records accepted and not confirmed committed. */
  get size(): number {
    return this.entries.length - this.base;
  }
}
