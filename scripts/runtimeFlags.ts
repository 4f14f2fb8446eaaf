/**
 * The runtime flags vmsift ships with: `deno task compile` bakes them into the executable (deno compile
 * keeps runtime flags), and the benchmarks and the shipped-form test run the bundle with them, so what is
 * measured is what ships.
 *
 * `--max-semi-space-size=1` (MiB): V8's young generation grows to 16 MiB semi-spaces by default; vmsift
 * allocates little on the JS heap (page data lives in typed arrays over large buffers), and the smaller young
 * generation takes 1-3 MiB off the peak RSS at no measured cost in time (issue 5: the 64 MiB budget).
 */
export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** As one `deno run`/`deno compile` argument. */
export const V8_FLAGS_ARG = `--v8-flags=${V8_FLAGS.join(",")}`;
