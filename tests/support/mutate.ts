/** Deterministic pseudo-random numbers and mutation of compressed pages, shared by the tests. */

/** Deterministic xorshift32 PRNG (never 0). */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>>= 0;
  };
}

/** The same sequence as numbers in [0, 1). */
export function uniform32(seed: number): () => number {
  const r = xorshift32(seed);
  return () => r() / 4294967296;
}

/**
 * `iterations` mutations of `seeds` (bit flips, byte sets, special bytes, truncations, appended bytes,
 * copied spans; 1-4 edits of one kind each), drawn from xorshift32(`seed`): calls `check` with each.
 */
export function mutateSeeds(
  seeds: readonly Uint8Array[],
  iterations: number,
  seed: number,
  check: (z: Uint8Array, i: number) => void,
): void {
  const r = xorshift32(seed);
  for (let i = 0; i < iterations; i++) {
    let z = seeds[r() % seeds.length].slice();
    const kind = r() % 6;
    const edits = 1 + (r() % 4);
    for (let e = 0; e < edits && z.length > 0; e++) {
      const at = r() % z.length;
      if (kind === 0) z[at] ^= 1 << (r() & 7);
      else if (kind === 1) z[at] = r() & 0xff;
      else if (kind === 2) z[at] = [0, 0xff, 0x11, 0x80, 0x7f, 0x40, 0x20, 0x10][r() & 7];
      else if (kind === 3) z = z.slice(0, at);
      else if (kind === 4) {
        const ext = new Uint8Array(z.length + 1 + (r() % 8));
        ext.set(z);
        for (let k = z.length; k < ext.length; k++) ext[k] = r() & 0xff;
        z = ext;
      } else {
        const from = r() % z.length;
        z.copyWithin(at, from, Math.min(z.length, from + 1 + (r() % 16)));
      }
    }
    check(z, i);
  }
}
