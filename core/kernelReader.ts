/**
 * Reading kernel data through BTF layouts (struct members by name, integers sized from BTF, pointers, C
 * strings, list_head lists), throwing a VmsiftError that names the address when a read fails: the helpers
 * the module, dm-crypt and crypto walks share (core/kernelModules.ts, core/dmCrypt.ts, core/cryptoTfm.ts).
 */
import type { Btf, VirtReader } from "./btf.ts";
import { VmsiftError } from "./errors.ts";

/** Reads kernel data through BTF layouts: the small helpers every walk needs. */
export class KernelReader {
  readonly #buf = new Uint8Array(8);
  readonly #dv = new DataView(this.#buf.buffer);
  /** Reads through `vm`; layouts from `btf`; `source` names the dump in errors. */
  constructor(readonly vm: VirtReader, readonly btf: Btf, readonly source: string) {}

  /** Byte offset of `struct.member` (a dotted path); throws naming what is missing. */
  offset(struct: string, member: string): number {
    return this.field(struct, member).offset;
  }

  /** Offset, type and size of `struct.member` (a dotted path); throws naming what is missing. */
  field(struct: string, member: string): { offset: number; type: number; size: number } {
    const id = this.btf.findAggregate(struct);
    if (id === undefined) {
      throw new VmsiftError(`no struct ${struct} in ${this.btf.source}`, { file: this.source });
    }
    return this.btf.memberPath(id, member.split("."));
  }

  /** Size of a struct; throws when absent. */
  size(struct: string): number {
    const id = this.btf.findAggregate(struct);
    if (id === undefined) {
      throw new VmsiftError(`no struct ${struct} in ${this.btf.source}`, { file: this.source });
    }
    return this.btf.sizeOf(id);
  }

  /** `n` bytes at `vaddr`; throws naming the address when unreadable. */
  bytes(vaddr: bigint, n: number, what: string): Uint8Array {
    const out = new Uint8Array(n);
    if (!this.vm.readVirt(vaddr, out)) {
      throw new VmsiftError(`cannot read ${what} (${n} bytes)`, { file: this.source, address: vaddr });
    }
    return out;
  }

  /** An unsigned little-endian integer of 1, 2, 4 or 8 bytes. */
  uint(vaddr: bigint, size: number, what: string): bigint {
    if (!this.vm.readVirt(vaddr, this.#buf.subarray(0, size))) {
      throw new VmsiftError(`cannot read ${what}`, { file: this.source, address: vaddr });
    }
    switch (size) {
      case 1:
        return BigInt(this.#buf[0]);
      case 2:
        return BigInt(this.#dv.getUint16(0, true));
      case 4:
        return BigInt(this.#dv.getUint32(0, true));
      default:
        return this.#dv.getBigUint64(0, true);
    }
  }

  /** A pointer. */
  ptr(vaddr: bigint, what: string): bigint {
    return this.uint(vaddr, 8, what);
  }

  /** A u32 as a number. */
  u32(vaddr: bigint, what: string): number {
    return Number(this.uint(vaddr, 4, what));
  }

  /** The integer member `struct.member` of the object at `base`, sized from BTF. */
  member(base: bigint, struct: string, member: string): bigint {
    const f = this.field(struct, member);
    return this.uint(base + BigInt(f.offset), f.size, `${struct}.${member}`);
  }

  /** A NUL-terminated string of at most `max` bytes (latin1). */
  cstring(vaddr: bigint, max = 256): string {
    let s = "";
    let p = vaddr;
    while (s.length < max) {
      // Read up to the next 1 KiB boundary, so that no read crosses into a page the string does not reach.
      const n = Math.min(max - s.length, 1024 - Number(p & 1023n));
      const b = new Uint8Array(n);
      if (!this.vm.readVirt(p, b)) {
        throw new VmsiftError("cannot read a string", { file: this.source, address: vaddr });
      }
      const z = b.indexOf(0);
      s += String.fromCharCode(...(z < 0 ? b : b.subarray(0, z)));
      if (z >= 0) break;
      p += BigInt(n);
    }
    return s;
  }

  /**
   * The entries of a list_head list: for the head at `head`, the address of each containing struct (the
   * list_head at `linkOffset` in it). Stops with an error after `limit` entries (a corrupt list).
   */
  list(head: bigint, linkOffset: number, what: string, limit = 100_000): bigint[] {
    const out: bigint[] = [];
    let p = this.ptr(head, `${what} list head`);
    while (p !== head) {
      if (p === 0n) throw new VmsiftError(`${what}: NULL in the list`, { file: this.source, address: head });
      if (out.length >= limit) {
        throw new VmsiftError(`${what}: more than ${limit} entries (a loop?)`, {
          file: this.source,
          address: head,
        });
      }
      out.push(p - BigInt(linkOffset));
      p = this.ptr(p, `${what} list entry`);
    }
    return out;
  }
}
