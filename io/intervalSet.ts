/**
 * A set of disjoint half-open ranges [start, end), merged when adjacent. Used to tell whether bytes were
 * already written. Writers produce few long runs, so a sorted array with binary search is enough.
 */
export class IntervalSet {
  #s: number[] = [];
  #e: number[] = [];

  /** Number of disjoint ranges. */
  get size(): number {
    return this.#s.length;
  }

  /** Index of the first range whose end is > x. */
  #firstEndAfter(x: number): number {
    let lo = 0, hi = this.#e.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#e[mid] > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** True when any byte of [start, end) is in the set. */
  overlaps(start: number, end: number): boolean {
    if (end <= start) return false;
    const i = this.#firstEndAfter(start);
    return i < this.#s.length && this.#s[i] < end;
  }

  /** True when every byte of [start, end) is in the set. */
  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.#firstEndAfter(start);
    return i < this.#s.length && this.#s[i] <= start && this.#e[i] >= end;
  }

  /** Add [start, end), merging with overlapping or adjacent ranges. */
  add(start: number, end: number): void {
    if (end <= start) return;
    // First range that ends at or after start (adjacent counts), last that starts at or before end.
    let i = this.#firstEndAfter(start - 1);
    let j = i;
    let s = start, e = end;
    while (j < this.#s.length && this.#s[j] <= end) {
      s = Math.min(s, this.#s[j]);
      e = Math.max(e, this.#e[j]);
      j++;
    }
    if (i > this.#s.length) i = this.#s.length;
    this.#s.splice(i, j - i, s);
    this.#e.splice(i, j - i, e);
  }

  /** The ranges in ascending order. */
  ranges(): Array<[number, number]> {
    return this.#s.map((s, k) => [s, this.#e[k]]);
  }

  /** Largest end, or 0 when empty. */
  get max(): number {
    return this.#e.length ? this.#e[this.#e.length - 1] : 0;
  }
}
