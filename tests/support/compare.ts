/**
 * Comparing vmsift's results with an oracle's: page counts against expected.json or a synthetic manifest
 * (`dump_levels`), and files against pinned sha256 digests.
 */
import assert from "node:assert/strict";

/**
 * Assert that `got` (a --stats-json object) has every count of `want` (one `dump_levels` entry of
 * expected.json or a synthetic manifest); `label` (e.g. `-d 31`) prefixes each message.
 */
export function assertCounts(
  got: Record<string, unknown>,
  want: Record<string, number>,
  label: string,
): void {
  for (const [k, v] of Object.entries(want)) assert.equal(got[k], v, `${label}: ${k}`);
}

/** sha256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
