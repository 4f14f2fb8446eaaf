/**
 * Key material inside the kernel crypto API's transform objects (crypto/api.c): a `struct crypto_tfm`
 * (embedded as `base` in crypto_skcipher, crypto_cipher, crypto_aead, crypto_shash) points to its algorithm
 * (`__crt_alg`, a struct crypto_alg: cra_driver_name, cra_ctxsize, cra_alignmask) and is followed by the
 * algorithm's context (`__crt_ctx`, cra_ctxsize bytes, aligned to cra_alignmask + 1). A plain cipher's
 * context is its expanded key (aes-generic: struct crypto_aes_ctx, whose first round keys are the key
 * itself). A template instance ("xts(ecb(aes-generic))") keeps pointers to its child transforms in a
 * context struct of the template's source file; those structs are read from BTF (the template's module or
 * the kernel's) by the names in TEMPLATE_CONTEXTS, and their crypto_* pointer members are followed. An
 * accelerated cipher is wrapped without a template in its name (crypto/simd.c "xts-aes-aesni" → cryptd →
 * "__xts-aes-aesni"): the wrapper is known by its init function (WRAPPER_INITS, from the symbols).
 */
import type { Btf } from "./btf.ts";
import { BTF_KIND } from "./btf.ts";
import type { KernelReader } from "./kernelReader.ts";

/** A byte range holding key material. */
export interface KeyRange {
  /** Kernel virtual address. */
  vaddr: bigint;
  /** Bytes. */
  size: number;
  /** What holds it, for ERASEINFO and messages ("tfm xts(ecb(aes-generic)) ... aes-generic ctx"). */
  what: string;
}

/**
 * Transforms whose context holds only child pointers, by template name: the context struct's name, per
 * CRYPTO_ALG_TYPE of the instance where it differs (cryptd: 0x5 skcipher, 0x3 aead).
 */
export const TEMPLATE_CONTEXTS: Record<string, string | Record<number, string>> = {
  xts: "xts_tfm_ctx",
  lrw: "lrw_tfm_ctx",
  essiv: "essiv_tfm_ctx",
  cts: "crypto_cts_ctx",
  ecb: "skcipher_ctx_simple",
  cbc: "skcipher_ctx_simple",
  pcbc: "skcipher_ctx_simple",
  cfb: "skcipher_ctx_simple",
  ofb: "skcipher_ctx_simple",
  ctr: "skcipher_ctx_simple",
  cryptd: { 0x5: "cryptd_skcipher_ctx", 0x3: "cryptd_aead_ctx" },
};

/**
 * Wrappers with no template in their driver name (crypto/simd.c: "xts-aes-aesni" around cryptd around
 * "__xts-aes-aesni"), known by their init function: symbol name → context struct.
 */
export const WRAPPER_INITS: Record<string, string> = {
  simd_skcipher_init: "simd_skcipher_ctx",
  simd_aead_init: "simd_aead_ctx",
};

/** The crypto_* handle structs that embed a crypto_tfm as `base` (possibly through another handle). */
const HANDLES = [
  "crypto_skcipher",
  "crypto_sync_skcipher",
  "crypto_cipher",
  "crypto_aead",
  "crypto_shash",
  "cryptd_skcipher",
  "cryptd_aead",
];

/** Result of a walk: the ranges, and the transforms whose key material was not reached, with why. */
export interface TfmWalk {
  ranges: KeyRange[];
  unreached: string[];
}

/** Where the walk reads. */
export interface TfmContext {
  /** Reads memory (layouts from any BTF: the lookups below search `btfs`). */
  k: KernelReader;
  /** The BTFs to search for context and handle structs, in order (modules', then the kernel's). */
  btfs: Btf[];
  /** Init function address → wrapper context struct (from WRAPPER_INITS and the symbols). */
  wrappers: Map<bigint, string>;
}

/** Offset, type id and BTF of `struct.path` in the first of `btfs` that has the struct. */
function fieldIn(c: TfmContext, struct: string, path: string): { offset: number; btf: Btf; type: number } {
  const btf = c.btfs.find((b) => b.findAggregate(struct) !== undefined);
  if (btf === undefined) return { ...c.k.field(struct, path), btf: c.k.btf }; // throws naming it
  const f = btf.memberPath(btf.findAggregate(struct)!, path.split("."));
  return { offset: f.offset, btf, type: f.type };
}

/** Offset of the crypto_tfm in a handle struct, following `base` members (crypto_sync_skcipher: 2 levels). */
function tfmOffset(c: TfmContext, handleStruct: string): number {
  let off = 0, struct = handleStruct;
  for (let i = 0; i < 4 && struct !== "crypto_tfm"; i++) {
    const f = fieldIn(c, struct, "base");
    off += f.offset;
    struct = f.btf.type(f.btf.resolve(f.type)).name;
  }
  return off;
}

/**
 * Walk a transform from `handle` (the address of a `struct <handleStruct>`, e.g. crypto_skcipher): every
 * plain cipher context under it is a key range; template and wrapper contexts are followed.
 */
export function tfmKeyRanges(
  c: TfmContext,
  handle: bigint,
  handleStruct: string,
  label: string,
  out: TfmWalk = { ranges: [], unreached: [] },
  depth = 0,
): TfmWalk {
  const k = c.k;
  if (handle === 0n || depth > 8) return out;
  const tfm = handle + BigInt(tfmOffset(c, handleStruct));
  const alg = k.ptr(tfm + BigInt(k.offset("crypto_tfm", "__crt_alg")), `${label}: crypto_tfm.__crt_alg`);
  const nameF = k.field("crypto_alg", "cra_driver_name");
  const driver = k.cstring(alg + BigInt(nameF.offset), nameF.size);
  const ctxSize = Number(k.member(alg, "crypto_alg", "cra_ctxsize"));
  const alignmask = Number(k.member(alg, "crypto_alg", "cra_alignmask"));
  const algType = Number(k.member(alg, "crypto_alg", "cra_flags")) & 0xf;
  let ctx = tfm + BigInt(k.offset("crypto_tfm", "__crt_ctx"));
  const align = BigInt(alignmask + 1);
  ctx = (ctx + align - 1n) / align * align;
  const where = `${label}=${driver}`;
  const paren = driver.indexOf("(");
  let ctxStruct: string | undefined;
  let what: string;
  if (paren < 0) {
    ctxStruct = wrapperContext(c, alg, algType);
    if (ctxStruct === undefined) {
      // A plain algorithm: its whole context is key material (an expanded key), unless it has none.
      if (ctxSize > 0) out.ranges.push({ vaddr: ctx, size: ctxSize, what: `${where}.ctx` });
      return out;
    }
    what = `wrapper context struct ${ctxStruct}`;
  } else {
    const template = driver.slice(0, paren);
    const known = TEMPLATE_CONTEXTS[template];
    ctxStruct = typeof known === "string" ? known : known?.[algType];
    what = `context of template '${template}'`;
    if (ctxStruct === undefined) {
      out.unreached.push(`${where}: ${what} not known to vmsift`);
      return out;
    }
  }
  const owner = c.btfs.find((b) => b.findAggregate(ctxStruct) !== undefined);
  if (owner === undefined) {
    out.unreached.push(`${where}: ${what} (struct ${ctxStruct}) not in any BTF of the dump`);
    return out;
  }
  for (const child of childHandles(owner, owner.findAggregate(ctxStruct)!, 0, algType)) {
    const p = k.ptr(ctx + BigInt(child.offset), `${where}: ${ctxStruct}.${child.name}`);
    if (child.struct === "crypto_shash") continue; // an unkeyed hash (essiv's), no key material
    tfmKeyRanges(c, p, child.struct, `${where}.${child.name}`, out, depth + 1);
  }
  return out;
}

/** The wrapper context struct of an skcipher/aead algorithm whose init function is a known wrapper's. */
function wrapperContext(c: TfmContext, alg: bigint, algType: number): string | undefined {
  if (c.wrappers.size === 0) return undefined;
  const outer = algType === 0x5 ? "skcipher_alg" : algType === 0x3 ? "aead_alg" : undefined;
  if (outer === undefined) return undefined;
  const base = fieldIn(c, outer, "base").offset, init = fieldIn(c, outer, "init").offset;
  const fn = c.k.ptr(alg - BigInt(base) + BigInt(init), `${outer}.init`);
  return c.wrappers.get(fn);
}

/** CRYPTO_ALG_TYPE_* of each handle struct (include/linux/crypto.h). */
const HANDLE_TYPES: Record<string, number[]> = {
  crypto_cipher: [0x1],
  crypto_aead: [0x3],
  crypto_skcipher: [0x5],
  crypto_sync_skcipher: [0x5],
  cryptd_skcipher: [0x5],
  cryptd_aead: [0x3],
  crypto_shash: [0xe, 0xf],
};

/**
 * The pointer members of a context struct that point to crypto_* handles, with their offsets; in a union,
 * the member whose handle type matches the parent transform's own type (essiv_tfm_ctx.u.skcipher for an
 * skcipher, u.aead for an aead).
 */
function childHandles(
  btf: Btf,
  id: number,
  base: number,
  parentType: number,
  depth = 0,
): { name: string; offset: number; struct: string }[] {
  const out: { name: string; offset: number; struct: string }[] = [];
  if (depth > 8) return out; // nested anonymous structs/unions only; a deeper nesting is not a context
  const isUnion = btf.type(btf.resolve(id)).kind === BTF_KIND.UNION;
  for (const m of btf.members(id)) {
    const off = base + Math.floor(m.bitOffset / 8);
    const t = btf.type(btf.resolve(m.type));
    if (t.kind === BTF_KIND.STRUCT || t.kind === BTF_KIND.UNION) {
      out.push(
        ...childHandles(btf, t.id, off, parentType, depth + 1).map((c) => ({
          ...c,
          name: `${m.name}.${c.name}`,
        })),
      );
      continue;
    }
    if (t.kind !== BTF_KIND.PTR) continue;
    const target = btf.type(btf.resolve(t.sizeOrType));
    if (!HANDLES.includes(target.name)) continue;
    if (isUnion && !HANDLE_TYPES[target.name].includes(parentType)) continue;
    out.push({ name: m.name, offset: off, struct: target.name });
  }
  return out;
}
