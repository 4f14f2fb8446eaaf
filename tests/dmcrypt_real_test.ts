/**
 * `--erase-secrets` on a real dump with two active dm-crypt mappings whose keys are known
 * (fixtures/dmcrypt/make-vmcore.sh: a 6.1 guest, aes-xts-plain64 with the 64-byte K1 and
 * aes-cbc-essiv:sha256 with the 32-byte K2). The oracle searches every page of the output for the keys'
 * bytes, 16 at a time (an AES-256 key schedule starts with its 32-byte key; xts uses the two halves of K1
 * as two AES keys; essiv keys its IV cipher with sha256(K2)). The keys are found by structure only (module
 * list → dm_mod's name_rb_tree → crypt_config); the search is only the test.
 *
 * The dumps are 1 GiB and not in the repository: VMSIFT_DMCRYPT_VMCORE=a.elf:b.elf (default: the script's
 * outputs, /var/tmp/vmsift-dmcrypt/out/vmcore-dmc.elf and, with AESNI=1, vmcore-dmc-aesni.elf: aes-generic
 * and the AES-NI transforms behind crypto/simd.c and cryptd); each is ignored when absent.
 */
import assert from "node:assert/strict";
import { isFile } from "./support/fixture.ts";
import { scanElf } from "./support/keyScan.ts";
import { runVmsift, tempDirTests } from "./support/run.ts";

const WORK = "/var/tmp/vmsift-dmcrypt/out";
const VMCORES = Deno.env.get("VMSIFT_DMCRYPT_VMCORE")?.split(":") ??
  [`${WORK}/vmcore-dmc.elf`, `${WORK}/vmcore-dmc-aesni.elf`];
const { tmp, test } = tempDirTests("vmsift-dmcrypt-");

const fromHex = (h: string): Uint8Array<ArrayBuffer> =>
  Uint8Array.from(h.match(/../g)!.map((b) => parseInt(b, 16)));
const hexOf = async (algo: string, data: Uint8Array<ArrayBuffer>) =>
  Array.from(new Uint8Array(await crypto.subtle.digest(algo, data))).map((b) =>
    b.toString(16).padStart(2, "0")
  )
    .join("");

/** The keys' bytes in 16-byte pieces, and the start of K1's hex text (dmsetup's table line). */
async function needles(): Promise<{ binary: [string, Uint8Array][]; text: [string, Uint8Array][] }> {
  const k1hex = await hexOf("SHA-512", new TextEncoder().encode("vmsift-dmcrypt-test"));
  const k2hex = k1hex.slice(0, 64).split("").reverse().join("");
  const k2 = fromHex(k2hex);
  const essiv = fromHex(await hexOf("SHA-256", k2));
  const binary: [string, Uint8Array][] = [];
  for (const [name, key] of [["K1", fromHex(k1hex)], ["K2", k2], ["sha256(K2)", essiv]] as const) {
    for (let i = 0; i < key.length; i += 16) {
      binary.push([`${name}[${i}..${i + 16})`, key.subarray(i, i + 16)]);
    }
  }
  return { binary, text: [["K1 as hex text", new TextEncoder().encode(k1hex.slice(0, 32))]] };
}

function eraseinfoOf(elf: string): string {
  // The ERASEINFO note's text: its lines start with "erase " (scanning for them is enough here).
  const bytes = Deno.readFileSync(elf).subarray(0, 1 << 20);
  const text = new TextDecoder("latin1").decode(bytes);
  return (text.match(/erase [^\n\0]+\n/g) ?? []).join("");
}

for (const vmcore of VMCORES) {
  test({
    name: `dm-crypt real: --erase-secrets leaves no copy of either key, its AES schedules or ESSIV's key (${
      vmcore.replace(/.*\//, "")
    })`,
    ignore: !isFile(vmcore),
    fn: async () => {
      const { binary } = await needles();
      const plain = tmp("plain.elf"), erased = tmp("erased.elf");
      const p = await runVmsift(["-E", "-d", "31", vmcore, plain]);
      assert.equal(p.code, 0, p.stderr);
      const e = await runVmsift([
        "--erase-secrets",
        "--message-level",
        "31",
        "-E",
        "-d",
        "31",
        vmcore,
        erased,
      ]);
      assert.equal(e.code, 0, e.stderr);
      // Without the rule every key is there (so the search can fail): the key, both schedules' first round
      // keys, ESSIV's derived key.
      const before = scanElf(plain, binary);
      for (const n of ["K1[0..16)", "K1[32..48)", "K2[0..16)", "sha256(K2)[0..16)"]) {
        assert.ok(before.some((h) => h.name === n), `${n} is in the dump without --erase-secrets`);
      }
      const after = scanElf(erased, binary);
      assert.deepEqual(after.map((h) => `${h.name} at 0x${h.paddr.toString(16)}`), []);
      const info = eraseinfoOf(erased);
      assert.match(info, /^erase dm_crypt:vmsiftcrypt\.map\[0\]\.key size 64$/m);
      assert.match(info, /^erase dm_crypt:vmsiftcrypt2\.map\[0\]\.key size 32$/m);
      // xts: its two ciphers' contexts (aes-generic) or one (AES-NI's holds both); essiv: cbc's and its own.
      assert.match(info, /^erase dm_crypt:vmsiftcrypt\.map\[0\]\.tfms\[0\]=xts.*\.ctx size \d+$/m);
      assert.equal(
        info.match(/^erase dm_crypt:vmsiftcrypt2\.map\[0\]\.tfms\[0\]=essiv.*\.ctx size \d+$/gm)?.length,
        2,
      );
      assert.doesNotMatch(e.stderr, /not reached/);
    },
  });
}
