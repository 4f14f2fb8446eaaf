/**
 * BTF, the kernel's compact type information (CONFIG_DEBUG_INFO_BTF): struct and union layouts, arrays,
 * pointers, typedefs. The kernel keeps it in memory between __start_BTF and __stop_BTF (found through
 * kallsyms, core/kallsyms.ts); a vmlinux carries the same bytes in its .BTF section (formats/elfSymbols.ts).
 *
 * Format (include/uapi/linux/btf.h): a header (magic 0xeb9f, version 1, flags, hdr_len, type_off, type_len,
 * str_off, str_len), then types numbered from 1, each a 12-byte btf_type (name_off; info = vlen bits 0-15,
 * kind bits 24-28, kind_flag bit 31; size or type) followed by kind-specific data. Struct members are
 * (name_off, type, offset): offset in bits, or with kind_flag, bitfield size << 24 | bit offset.
 *
 * A module's BTF is split BTF (kernel/bpf/btf.c btf_parse_module): its types are numbered on from the last
 * type of the kernel's BTF, and string offsets at or past the kernel's string section length are its own
 * (offset minus that length); everything below refers to the kernel's BTF ({@link Btf.parseSplit}).
 */
import { VmsiftError } from "./errors.ts";

/** BTF kinds. */
export const BTF_KIND = {
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

/** One type. `data` is the offset of its kind-specific data in the type section. */
export interface BtfType {
  /** Type id (1-based; 0 is void). */
  id: number;
  /** BTF_KIND value. */
  kind: number;
  /** Name ("" when anonymous). */
  name: string;
  /** Number of members, enumerators or parameters. */
  vlen: number;
  /** kind_flag (struct/union: bitfield member offsets). */
  kindFlag: boolean;
  /** size (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT) or referenced type id (PTR, TYPEDEF, ...). */
  sizeOrType: number;
  /** Offset of the kind-specific data after the 12-byte btf_type. */
  data: number;
}

/** A struct/union member. */
export interface BtfMember {
  /** Member name ("" for an anonymous struct/union). */
  name: string;
  /** Member type id. */
  type: number;
  /** Offset from the start of the struct, in bits. */
  bitOffset: number;
  /** Bitfield width in bits, 0 when not a bitfield. */
  bitfieldSize: number;
}

/** Where a member path lands. */
export interface BtfField {
  /** Byte offset from the start of the outer type. */
  offset: number;
  /** Bit offset (offset * 8 + bits within, for bitfields). */
  bitOffset: number;
  /** Bitfield width in bits, 0 when not a bitfield. */
  bitfieldSize: number;
  /** The member's type id (unresolved: may be a typedef). */
  type: number;
  /** Size in bytes of the member's type. */
  size: number;
}

const HEADER_MAGIC = 0xeb9f;

/** Parsed BTF. */
export class Btf {
  /** Every type, indexed by id (0 is void); for split BTF only its own (the base's ids are holes). */
  readonly types: BtfType[] = [];
  readonly #dv: DataView;
  readonly #typeBase: number;
  readonly #strBase: number;
  readonly #strLen: number;
  readonly #bytes: Uint8Array;
  readonly #byName = new Map<string, number[]>();
  readonly #base: Btf | undefined;
  /** First type id of this blob (1, or one past the base's last type for split BTF). */
  readonly #startId: number;
  /** String offsets below this belong to the base. */
  readonly #strStart: number;
  /** Where the bytes came from, for messages. */
  readonly source: string;

  private constructor(bytes: Uint8Array, source: string, base?: Btf) {
    this.source = source;
    this.#base = base;
    this.#startId = base === undefined ? 1 : base.types.length;
    this.#strStart = base === undefined ? 0 : base.strTotal;
    this.#bytes = bytes;
    this.#dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const dv = this.#dv;
    if (bytes.length < 24 || dv.getUint16(0, true) !== HEADER_MAGIC) {
      throw new VmsiftError("not BTF data (no 0xeb9f magic)", { file: source, offset: 0 });
    }
    if (dv.getUint8(2) !== 1) {
      throw new VmsiftError(`BTF version ${dv.getUint8(2)} unknown`, { file: source });
    }
    const hdrLen = dv.getUint32(4, true);
    const typeOff = dv.getUint32(8, true), typeLen = dv.getUint32(12, true);
    const strOff = dv.getUint32(16, true), strLen = dv.getUint32(20, true);
    this.#typeBase = hdrLen + typeOff;
    this.#strBase = hdrLen + strOff;
    this.#strLen = strLen;
    if (this.#typeBase + typeLen > bytes.length || this.#strBase + strLen > bytes.length) {
      throw new VmsiftError("BTF sections run past the data", { file: source, offset: 4 });
    }
    if (base === undefined) {
      this.types.push({ id: 0, kind: 0, name: "void", vlen: 0, kindFlag: false, sizeOrType: 0, data: 0 });
    } else {
      this.types.length = this.#startId; // ids below are the base's (type() asks it): left as holes
    }
    let p = this.#typeBase;
    const end = this.#typeBase + typeLen;
    while (p < end) {
      const info = dv.getUint32(p + 4, true);
      const t: BtfType = {
        id: this.types.length,
        kind: (info >>> 24) & 0x1f,
        name: this.str(dv.getUint32(p, true)),
        vlen: info & 0xffff,
        kindFlag: (info >>> 31) === 1,
        sizeOrType: dv.getUint32(p + 8, true),
        data: p + 12,
      };
      p += 12 + extraSize(t, source, p);
      this.types.push(t);
      if (t.name !== "") {
        const l = this.#byName.get(t.name);
        if (l) l.push(t.id);
        else this.#byName.set(t.name, [t.id]);
      }
    }
    if (p !== end) throw new VmsiftError("BTF type section ends inside a type", { file: source, offset: p });
  }

  /** Parse BTF bytes; `source` names them in errors. */
  static parse(bytes: Uint8Array, source = "BTF"): Btf {
    return new Btf(bytes, source);
  }

  /**
   * Parse a module's split BTF on top of `base` (the kernel's BTF): type ids continue from the base's, and
   * string offsets past the base's strings are this blob's own.
   */
  static parseSplit(bytes: Uint8Array, base: Btf, source = "module BTF"): Btf {
    return new Btf(bytes, source, base);
  }

  /** The base BTF of split BTF (undefined for the kernel's own). */
  get base(): Btf | undefined {
    return this.#base;
  }

  /** Length of the string space: the base's strings and this blob's (split BTF offsets start past it). */
  get strTotal(): number {
    return this.#strStart + this.#strLen;
  }

  /** The raw bytes. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** String at `off` of the string section. */
  str(off: number): string {
    if (this.#base !== undefined) {
      if (off < this.#strStart) return this.#base.str(off);
      off -= this.#strStart;
    }
    if (off >= this.#strLen) {
      throw new VmsiftError(`BTF string offset ${off} out of range`, { file: this.source });
    }
    let e = this.#strBase + off;
    while (this.#bytes[e] !== 0) e++;
    return String.fromCharCode(...this.#bytes.subarray(this.#strBase + off, e));
  }

  /** The type with this id; throws for an id that does not exist. */
  type(id: number): BtfType {
    if (id < this.#startId && this.#base !== undefined) return this.#base.type(id);
    const t = this.types[id];
    if (t === undefined) throw new VmsiftError(`BTF type ${id} does not exist`, { file: this.source });
    return t;
  }

  /** Ids of the types called `name` of one of `kinds` (all kinds when empty). */
  find(name: string, ...kinds: number[]): number[] {
    const own = (this.#byName.get(name) ?? []).filter((id) =>
      kinds.length === 0 || kinds.includes(this.types[id].kind)
    );
    return this.#base === undefined ? own : [...own, ...this.#base.find(name, ...kinds)];
  }

  /**
   * A struct or union by name ("uts_namespace", "struct uts_namespace", "union x") or a typedef of one
   * ("atomic_long_t"), resolved; undefined when absent (a forward declaration does not count).
   */
  findAggregate(name: string): number | undefined {
    const m = /^(struct|union)\s+(.+)$/.exec(name.trim());
    const kinds = m === null
      ? [BTF_KIND.STRUCT, BTF_KIND.UNION]
      : [m[1] === "struct" ? BTF_KIND.STRUCT : BTF_KIND.UNION];
    const bare = m === null ? name.trim() : m[2];
    const direct = this.find(bare, ...kinds)[0];
    if (direct !== undefined) return direct;
    if (m !== null) return undefined;
    const td = this.find(bare, BTF_KIND.TYPEDEF)[0];
    return td === undefined ? undefined : this.resolve(td);
  }

  /** Skip typedefs and qualifiers (const, volatile, restrict, type tags). */
  resolve(id: number): number {
    for (let n = 0; n < 64; n++) {
      const t = this.type(id);
      if (
        t.kind !== BTF_KIND.TYPEDEF && t.kind !== BTF_KIND.CONST && t.kind !== BTF_KIND.VOLATILE &&
        t.kind !== BTF_KIND.RESTRICT && t.kind !== BTF_KIND.TYPE_TAG
      ) return id;
      id = t.sizeOrType;
    }
    throw new VmsiftError(`BTF type ${id}: typedef loop`, { file: this.source });
  }

  /** Size in bytes of a type (pointers 8; arrays elements × size). */
  sizeOf(id: number): number {
    const t = this.type(this.resolve(id));
    switch (t.kind) {
      case BTF_KIND.INT:
      case BTF_KIND.STRUCT:
      case BTF_KIND.UNION:
      case BTF_KIND.ENUM:
      case BTF_KIND.ENUM64:
      case BTF_KIND.FLOAT:
      case BTF_KIND.DATASEC:
        return t.sizeOrType;
      case BTF_KIND.PTR:
        return 8;
      case BTF_KIND.ARRAY: {
        const a = this.array(t.id);
        return a.nelems * this.sizeOf(a.type);
      }
      case 0:
        return 0;
      default:
        throw new VmsiftError(`BTF type ${t.id} (${t.name || "anonymous"}, kind ${t.kind}) has no size`, {
          file: this.source,
        });
    }
  }

  /** Element type and count of an array type. */
  array(id: number): { type: number; indexType: number; nelems: number } {
    const r = this.resolve(id);
    if (r < this.#startId && this.#base !== undefined) return this.#base.array(r);
    const t = this.type(r);
    if (t.kind !== BTF_KIND.ARRAY) {
      throw new VmsiftError(`BTF type ${id} is not an array`, { file: this.source });
    }
    return {
      type: this.#dv.getUint32(t.data, true),
      indexType: this.#dv.getUint32(t.data + 4, true),
      nelems: this.#dv.getUint32(t.data + 8, true),
    };
  }

  /** Target of a pointer type. */
  pointee(id: number): number {
    const t = this.type(this.resolve(id));
    if (t.kind !== BTF_KIND.PTR) {
      throw new VmsiftError(`BTF type ${id} is not a pointer`, { file: this.source });
    }
    return t.sizeOrType;
  }

  /** The encoding word of an INT type (bits, offset, signedness). */
  intEncoding(id: number): number {
    if (id < this.#startId && this.#base !== undefined) return this.#base.intEncoding(id);
    return this.#dv.getUint32(this.type(id).data, true);
  }

  /** Members of a struct or union. */
  members(id: number): BtfMember[] {
    const r = this.resolve(id);
    if (r < this.#startId && this.#base !== undefined) return this.#base.members(r);
    const t = this.type(r);
    if (t.kind !== BTF_KIND.STRUCT && t.kind !== BTF_KIND.UNION) {
      throw new VmsiftError(`BTF type ${id} (${t.name || "anonymous"}) is not a struct or union`, {
        file: this.source,
      });
    }
    const out: BtfMember[] = [];
    for (let i = 0; i < t.vlen; i++) {
      const p = t.data + i * 12;
      const off = this.#dv.getUint32(p + 8, true);
      const type = this.#dv.getUint32(p + 4, true);
      let bitOffset = off, bitfieldSize = 0;
      if (t.kindFlag) {
        bitOffset = off & 0xffffff;
        bitfieldSize = off >>> 24;
      } else {
        const it = this.type(this.resolve(type));
        if (it.kind === BTF_KIND.INT) {
          const enc = this.intEncoding(it.id);
          const bits = enc & 0xff, intOff = (enc >>> 16) & 0xff;
          if (bits !== it.sizeOrType * 8 || intOff !== 0) {
            bitfieldSize = bits;
            bitOffset += intOff;
          }
        }
      }
      out.push({ name: this.str(this.#dv.getUint32(p, true)), type, bitOffset, bitfieldSize });
    }
    return out;
  }

  /**
   * One member of a struct/union by name, looking through anonymous struct/union members as C does;
   * undefined when absent.
   */
  member(id: number, name: string): BtfField | undefined {
    for (const m of this.members(id)) {
      if (m.name === name) {
        return {
          offset: Math.floor(m.bitOffset / 8),
          bitOffset: m.bitOffset,
          bitfieldSize: m.bitfieldSize,
          type: m.type,
          size: m.bitfieldSize > 0 ? Math.ceil(m.bitfieldSize / 8) : this.sizeOf(m.type),
        };
      }
      if (m.name === "") {
        const k = this.type(this.resolve(m.type)).kind;
        if (k !== BTF_KIND.STRUCT && k !== BTF_KIND.UNION) continue;
        const inner = this.member(m.type, name);
        if (inner !== undefined) {
          return {
            ...inner,
            offset: inner.offset + Math.floor(m.bitOffset / 8),
            bitOffset: inner.bitOffset + m.bitOffset,
          };
        }
      }
    }
    return undefined;
  }

  /** A dotted member path ("name.nodename") from a struct/union; throws naming the missing member. */
  memberPath(id: number, path: string[]): BtfField {
    let field: BtfField = { offset: 0, bitOffset: 0, bitfieldSize: 0, type: id, size: this.sizeOf(id) };
    let where = this.typeName(id);
    for (const name of path) {
      const k = this.type(this.resolve(field.type)).kind;
      if (k !== BTF_KIND.STRUCT && k !== BTF_KIND.UNION) {
        throw new VmsiftError(`${where} is not a struct or union: no member '${name}'`, {
          file: this.source,
        });
      }
      const m = this.member(field.type, name);
      if (m === undefined) throw new VmsiftError(`${where} has no member '${name}'`, { file: this.source });
      field = { ...m, offset: field.offset + m.offset, bitOffset: field.bitOffset + m.bitOffset };
      where = `${where}.${name}`;
    }
    return field;
  }

  /** C-like name of a type, for messages ("struct uts_namespace", "char *", "char[65]"). */
  typeName(id: number): string {
    const t = this.type(id);
    switch (t.kind) {
      case 0:
        return "void";
      case BTF_KIND.STRUCT:
        return `struct ${t.name || "(anonymous)"}`;
      case BTF_KIND.UNION:
        return `union ${t.name || "(anonymous)"}`;
      case BTF_KIND.ENUM:
      case BTF_KIND.ENUM64:
        return `enum ${t.name || "(anonymous)"}`;
      case BTF_KIND.PTR:
        return `${this.typeName(t.sizeOrType)} *`;
      case BTF_KIND.ARRAY: {
        const a = this.array(id);
        return `${this.typeName(a.type)}[${a.nelems}]`;
      }
      case BTF_KIND.CONST:
        return `const ${this.typeName(t.sizeOrType)}`;
      case BTF_KIND.VOLATILE:
        return `volatile ${this.typeName(t.sizeOrType)}`;
      default:
        return t.name || `(kind ${t.kind})`;
    }
  }

  /** The type of a global variable when BTF has it (a VAR; kernels emit only per-cpu ones before 6.x). */
  variableType(name: string): number | undefined {
    const v = this.find(name, BTF_KIND.VAR)[0];
    return v === undefined ? undefined : this.type(v).sizeOrType;
  }
}

function extraSize(t: BtfType, source: string, at: number): number {
  switch (t.kind) {
    case BTF_KIND.INT:
    case BTF_KIND.VAR:
    case BTF_KIND.DECL_TAG:
      return 4;
    case BTF_KIND.ARRAY:
      return 12;
    case BTF_KIND.STRUCT:
    case BTF_KIND.UNION:
    case BTF_KIND.DATASEC:
    case BTF_KIND.ENUM64:
      return t.vlen * 12;
    case BTF_KIND.ENUM:
    case BTF_KIND.FUNC_PROTO:
      return t.vlen * 8;
    case BTF_KIND.PTR:
    case BTF_KIND.FWD:
    case BTF_KIND.TYPEDEF:
    case BTF_KIND.VOLATILE:
    case BTF_KIND.CONST:
    case BTF_KIND.RESTRICT:
    case BTF_KIND.FUNC:
    case BTF_KIND.FLOAT:
    case BTF_KIND.TYPE_TAG:
      return 0;
    default:
      throw new VmsiftError(`BTF type ${t.id}: unknown kind ${t.kind}`, { file: source, offset: at });
  }
}

/** Something that reads kernel virtual memory (core/virtMem.ts VirtualMemory is one). */
export interface VirtReader {
  /** Read [vaddr, vaddr + out.length); false when any of it is unmapped. */
  readVirt(vaddr: bigint, out: Uint8Array): boolean;
}

/**
 * The kernel's BTF from the dump: [__start_BTF, __stop_BTF) (addresses from kallsyms). Throws naming what is
 * missing (the symbols: kernel built without CONFIG_DEBUG_INFO_BTF) or unreadable.
 */
export function readKernelBtf(
  vm: VirtReader,
  lookup: (name: string) => bigint | undefined,
  source = "vmcore",
): Btf {
  const start = lookup("__start_BTF"), stop = lookup("__stop_BTF");
  if (start === undefined || stop === undefined) {
    throw new VmsiftError(
      "the kernel has no BTF (no __start_BTF/__stop_BTF in kallsyms: CONFIG_DEBUG_INFO_BTF off)",
      {
        file: source,
      },
    );
  }
  const len = stop - start;
  if (len <= 0n || len > 1n << 30n) {
    throw new VmsiftError(`__stop_BTF - __start_BTF is ${len}: not a BTF blob`, {
      file: source,
      address: start,
    });
  }
  const bytes = new Uint8Array(Number(len));
  if (!vm.readVirt(start, bytes)) {
    throw new VmsiftError(`cannot read the kernel's BTF (${len} bytes)`, { file: source, address: start });
  }
  return Btf.parse(bytes, `${source} (kernel BTF)`);
}
