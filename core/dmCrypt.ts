/**
 * dm-crypt keys in a dump, found by structure from a global (never by looking for key bytes):
 *
 *   dm_mod's static `name_rb_tree` (drivers/md/dm-ioctl.c, an rb_root) → every `struct hash_cell` (through
 *   its `name_node`) → `md` (struct mapped_device) → `map` (the live struct dm_table), and `new_map` (a
 *   loaded, inactive table) → `targets[0 .. num_targets)` (struct dm_target) whose `type->name` is "crypt"
 *   → `private` = struct crypt_config of dm_crypt.ko: `key[key_size]` (the whole key, every part), the
 *   crypto transforms `cipher_tfm.tfms[0 .. tfms_count)` (crypto_skcipher, or crypto_aead when
 *   `cipher_flags` has CRYPT_MODE_INTEGRITY_AEAD) whose contexts hold the expanded keys
 *   (core/cryptoTfm.ts), and `authenc_key` (a copy of the key for authenc AEAD modes).
 *
 * The layouts come from the modules' own BTF (dm_mod's for hash_cell, mapped_device, dm_table, dm_target;
 * dm_crypt's for crypt_config; core/kernelModules.ts) and the symbols from dm_mod's kallsyms.
 */
import type { Btf } from "./btf.ts";
import { type KeyRange, type TfmContext, tfmKeyRanges, WRAPPER_INITS } from "./cryptoTfm.ts";
import { VmsiftError } from "./errors.ts";
import type { ModuleInfo } from "./kernelModules.ts";
import { KernelReader } from "./kernelReader.ts";

/** CRYPT_MODE_INTEGRITY_AEAD: bit number in crypt_config.cipher_flags (drivers/md/dm-crypt.c). */
const CRYPT_MODE_INTEGRITY_AEAD = 0;

/** What was found. */
export interface DmCryptKeys {
  /** Ranges to erase. */
  ranges: KeyRange[];
  /** Crypt targets found ("vmsiftcrypt: aes-xts-plain64, 64-byte key"). */
  targets: string[];
  /** Key material known to exist but not reached, and why. */
  unreached: string[];
}

/**
 * Every dm-crypt key range of the dump. `mods` are the loaded modules with BTF, and the symbols of dm_mod
 * and crypto_simd (core/kernelModules.ts readModuleInfos); `lookup` gives the kernel's symbols. A kernel
 * without module BTF or without dm_mod's name_rb_tree gives an `unreached` line; a structure that cannot be
 * read throws. Throws when dm_mod is loaded but its symbols or BTF cannot be
 * used; returns no targets when dm_mod or dm_crypt is not loaded.
 */
export function dmCryptKeys(
  vm: KernelReader["vm"],
  kernelBtf: Btf,
  lookup: (name: string) => bigint | undefined,
  mods: ModuleInfo[],
  source: string,
): DmCryptKeys {
  const out: DmCryptKeys = { ranges: [], targets: [], unreached: [] };
  const dm = mods.find((m) => m.name === "dm_mod");
  const crypt = mods.find((m) => m.name === "dm_crypt");
  if (dm === undefined || crypt === undefined) return out;
  // A kernel without the layouts or the list vmsift reads: a warning names it, the keys stay.
  if (dm.btf === undefined || crypt.btf === undefined) {
    const which = dm.btf === undefined ? "dm_mod" : "dm_crypt";
    out.unreached.push(
      `every dm-crypt key: no BTF for ${which} in the dump (CONFIG_DEBUG_INFO_BTF_MODULES off?)`,
    );
    return out;
  }
  const tree = dm.symbols.find((s) => s.name === "name_rb_tree");
  if (tree === undefined) {
    // Older kernels keep the hash cells in buckets (_name_buckets), not read here.
    out.unreached.push("every dm-crypt key: no name_rb_tree in dm_mod's symbols (an older kernel?)");
    return out;
  }
  const kd = new KernelReader(vm, dm.btf, source);
  const kc = new KernelReader(vm, crypt.btf, source);
  const btfs = [...mods.flatMap((m) => m.btf === undefined ? [] : [m.btf]), kernelBtf];
  const wrappers = new Map<bigint, string>();
  for (const m of mods) {
    for (const sym of m.symbols) {
      const ctx = WRAPPER_INITS[sym.name];
      if (ctx !== undefined) wrappers.set(sym.address, ctx);
    }
  }
  for (const [name, ctx] of Object.entries(WRAPPER_INITS)) {
    const a = lookup(name);
    if (a !== undefined) wrappers.set(a, ctx);
  }
  const nodeOff = BigInt(kd.offset("hash_cell", "name_node"));
  for (const node of rbNodes(kd, kd.ptr(tree.address, "name_rb_tree"))) {
    const hc = node - nodeOff;
    const name = kd.cstring(kd.member(hc, "hash_cell", "name"), 128);
    const md = kd.member(hc, "hash_cell", "md");
    const tables: [string, bigint][] = [["map", md === 0n ? 0n : kd.member(md, "mapped_device", "map")], [
      "new_map",
      kd.member(hc, "hash_cell", "new_map"),
    ]];
    for (const [which, table] of tables) {
      if (table === 0n) continue;
      const n = Number(kd.member(table, "dm_table", "num_targets"));
      const targets = kd.member(table, "dm_table", "targets");
      const stride = BigInt(kd.size("dm_target"));
      for (let i = 0; i < n; i++) {
        const ti = targets + BigInt(i) * stride;
        const type = kd.member(ti, "dm_target", "type");
        if (type === 0n || kd.cstring(kd.member(type, "target_type", "name"), 32) !== "crypt") continue;
        const cc = kd.member(ti, "dm_target", "private");
        if (cc === 0n) continue;
        const label = `dm_crypt:${name}.${which}[${i}]`;
        cryptConfigKeys({ k: kc, btfs, wrappers }, cc, label, out);
      }
    }
  }
  return out;
}

/** The key ranges of one struct crypt_config. */
function cryptConfigKeys(c: TfmContext, cc: bigint, label: string, out: DmCryptKeys): void {
  const k = c.k;
  const keySize = Number(k.member(cc, "crypt_config", "key_size"));
  const cipher = k.member(cc, "crypt_config", "cipher_string");
  out.targets.push(`${label}: ${cipher === 0n ? "?" : k.cstring(cipher, 128)}, ${keySize}-byte key`);
  if (keySize > 0) {
    out.ranges.push({
      vaddr: cc + BigInt(k.offset("crypt_config", "key")),
      size: keySize,
      what: `${label}.key`,
    });
  }
  const authenc = k.member(cc, "crypt_config", "authenc_key");
  if (authenc !== 0n) {
    // crypt_authenckey_size(): key_size - key_extra_size + RTA_SPACE(sizeof(crypto_authenc_key_param)) = +8.
    const extra = Number(k.member(cc, "crypt_config", "key_extra_size"));
    out.ranges.push({ vaddr: authenc, size: keySize - extra + 8, what: `${label}.authenc_key` });
  }
  const aead = (k.member(cc, "crypt_config", "cipher_flags") >> BigInt(CRYPT_MODE_INTEGRITY_AEAD)) & 1n;
  const tfms = k.member(cc, "crypt_config", "cipher_tfm.tfms");
  const count = Number(k.member(cc, "crypt_config", "tfms_count"));
  for (let i = 0; tfms !== 0n && i < count && i < 1024; i++) {
    const handle = k.ptr(tfms + BigInt(i * 8), `${label}: cipher_tfm.tfms[${i}]`);
    const w = tfmKeyRanges(c, handle, aead ? "crypto_aead" : "crypto_skcipher", `${label}.tfms[${i}]`);
    out.ranges.push(...w.ranges);
    out.unreached.push(...w.unreached);
  }
}

/** In-order nodes of an rb tree from its root node (rb_node: __rb_parent_color, rb_right, rb_left). */
function rbNodes(k: KernelReader, root: bigint): bigint[] {
  const right = BigInt(k.offset("rb_node", "rb_right")), left = BigInt(k.offset("rb_node", "rb_left"));
  const out: bigint[] = [];
  const stack: bigint[] = [];
  let n = root;
  while (n !== 0n || stack.length > 0) {
    while (n !== 0n) {
      if (stack.length > 64) throw new VmsiftError("rb tree deeper than 64 (corrupt?)", { address: root });
      stack.push(n);
      n = k.ptr(n + left, "rb_node.rb_left");
    }
    n = stack.pop()!;
    out.push(n);
    if (out.length > 1_000_000) throw new VmsiftError("rb tree too large (a loop?)", { address: root });
    n = k.ptr(n + right, "rb_node.rb_right");
  }
  return out;
}
