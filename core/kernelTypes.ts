/**
 * Symbols and types for `--config` / `--erase` without DWARF: addresses from kallsyms (or a vmlinux's
 * symtab), layouts from BTF, described the way makedumpfile's DWARF reader describes them to its filter
 * code (core/eraseResolve.ts): following a type through typedefs, qualifiers, arrays and pointers to its
 * innermost type, with flags for what was crossed, the innermost type's name and size, and the length of a
 * directly declared array.
 *
 * BTF describes every type but, before pahole's global-variable support, not the type of a non-per-cpu
 * global variable; those come from a BTF VAR when there is one, else from a small table of well-known
 * kernel globals (KNOWN_SYMBOL_TYPES).
 */
import { type Btf, BTF_KIND } from "./btf.ts";

/** makedumpfile's type flags (dwarf_info.h). */
export const TYPE_BASE = 0x01;
export const TYPE_ARRAY = 0x02;
export const TYPE_PTR = 0x04;
export const TYPE_STRUCT = 0x08;
export const TYPE_LIST_HEAD = 0x10;

/** A type as the filter code sees it. */
export interface TypeInfo {
  /** Name of the innermost type ("char", "uts_namespace", "void"); undefined for an anonymous one. */
  name: string | undefined;
  /** TYPE_* flags of what the type chain crossed. */
  flags: number;
  /** Size of the innermost type in bytes. */
  size: number;
  /** Elements of a directly declared array (first dimension), 0 otherwise. */
  arrayLength: number;
}

/** Where symbols and types come from. */
export interface KernelTypes {
  /** Run-time address of a symbol (KASLR applied). */
  symbolAddress(name: string): bigint | undefined;
  /** The type of a global variable; undefined when unknown. */
  symbolType(name: string): TypeInfo | undefined;
  /** Byte offset of a member (through anonymous members); undefined when the struct or member is absent. */
  memberOffset(struct: string, member: string): number | undefined;
  /** The type of a member (through anonymous members); undefined when absent. */
  memberType(struct: string, member: string): TypeInfo | undefined;
  /** Size of a struct or union; undefined when absent. */
  structSize(struct: string): number | undefined;
  /** What is missing, for messages (e.g. "BTF has no variable types"). */
  describeSymbolTypes(): string;
}

/**
 * Types of well-known kernel globals, for kernels whose BTF has no VAR for them (C declarations; x86_64 and
 * arm64 have COMMAND_LINE_SIZE 2048).
 */
export const KNOWN_SYMBOL_TYPES: Record<string, string> = {
  init_uts_ns: "struct uts_namespace",
  saved_command_line: "char *",
  static_command_line: "char *",
  boot_command_line: "char[2048]",
  init_task: "struct task_struct",
  // Anonymous structs in drivers/char/random.c (5.17+), seen through their first member:
  // base_crng.key (u8[CHACHA_KEY_SIZE]) and input_pool.hash (struct blake2s_state).
  base_crng: "char[32]",
  input_pool: "struct blake2s_state",
};

/** A type reference: a BTF id, or a pointer/array built from a declaration. */
type TypeRef = { btf: number } | { ptr: TypeRef } | { array: TypeRef; n: number };

/** KernelTypes over BTF and a symbol lookup. */
export class BtfKernelTypes implements KernelTypes {
  readonly #btf: Btf;
  readonly #lookup: (name: string) => bigint | undefined;
  /** Types from `btf`, symbol addresses from `lookup` (kallsyms or a vmlinux symtab). */
  constructor(btf: Btf, lookup: (name: string) => bigint | undefined) {
    this.#btf = btf;
    this.#lookup = lookup;
  }

  /** The run-time address of a symbol. */
  symbolAddress(name: string): bigint | undefined {
    return this.#lookup(name);
  }

  /** The type of a global variable: a BTF VAR, else KNOWN_SYMBOL_TYPES; undefined when unknown. */
  symbolType(name: string): TypeInfo | undefined {
    const v = this.#btf.variableType(name);
    if (v !== undefined) return this.#info({ btf: v });
    const decl = KNOWN_SYMBOL_TYPES[name];
    if (decl === undefined) return undefined;
    const ref = this.#parseDecl(decl);
    return ref === undefined ? undefined : this.#info(ref);
  }

  /** Byte offset of a member (through anonymous members); undefined when absent. */
  memberOffset(struct: string, member: string): number | undefined {
    const id = this.#btf.findAggregate(struct);
    return id === undefined ? undefined : this.#btf.member(id, member)?.offset;
  }

  /** The type of a member (through anonymous members); undefined when absent. */
  memberType(struct: string, member: string): TypeInfo | undefined {
    const id = this.#btf.findAggregate(struct);
    const m = id === undefined ? undefined : this.#btf.member(id, member);
    return m === undefined ? undefined : this.#info({ btf: m.type });
  }

  /** Size of a struct or union; undefined when absent. */
  structSize(struct: string): number | undefined {
    const id = this.#btf.findAggregate(struct);
    return id === undefined ? undefined : this.#btf.sizeOf(id);
  }

  /** Why a symbol's type may be unknown, for messages. */
  describeSymbolTypes(): string {
    return `the kernel's BTF has no variable entry for it, and vmsift knows the types of only ${
      Object.keys(KNOWN_SYMBOL_TYPES).join(", ")
    }`;
  }

  #parseDecl(decl: string): TypeRef | undefined {
    const m = /^(.*?)\s*(\*|\[(\d+)\])?$/.exec(decl.trim())!;
    const base = m[1];
    let ref: TypeRef | undefined;
    if (base.startsWith("struct ") || base.startsWith("union ")) {
      const id = this.#btf.findAggregate(base);
      ref = id === undefined ? undefined : { btf: id };
    } else {
      const id = this.#btf.find(base, BTF_KIND.INT)[0];
      ref = id === undefined ? undefined : { btf: id };
    }
    if (ref === undefined) return undefined;
    if (m[2] === "*") return { ptr: ref };
    if (m[3] !== undefined) return { array: ref, n: Number(m[3]) };
    return ref;
  }

  /** makedumpfile's get_dwarf_base_type() + get_data_array_length() on a type. */
  #info(ref: TypeRef): TypeInfo {
    const btf = this.#btf;
    let flags = 0;
    let arrayLength = 0;
    // A directly declared array (possibly const): its first dimension.
    const direct = this.#skipConst(ref);
    if ("array" in direct) arrayLength = direct.n;
    else if ("btf" in direct && btf.type(direct.btf).kind === BTF_KIND.ARRAY) {
      arrayLength = btf.array(direct.btf).nelems;
    }
    let cur: TypeRef = ref;
    for (let guard = 0; guard < 64; guard++) {
      if ("ptr" in cur) {
        flags |= TYPE_PTR;
        cur = cur.ptr;
        continue;
      }
      if ("array" in cur) {
        flags |= TYPE_ARRAY;
        cur = cur.array;
        continue;
      }
      const t = btf.type(cur.btf);
      switch (t.kind) {
        case BTF_KIND.TYPEDEF:
        case BTF_KIND.CONST:
        case BTF_KIND.VOLATILE:
        case BTF_KIND.RESTRICT:
        case BTF_KIND.TYPE_TAG:
          cur = { btf: t.sizeOrType };
          continue;
        case BTF_KIND.ARRAY:
          flags |= TYPE_ARRAY;
          cur = { btf: btf.array(t.id).type };
          continue;
        case BTF_KIND.PTR:
          flags |= TYPE_PTR;
          if (t.sizeOrType === 0) {
            return { name: flags === TYPE_PTR ? "void" : undefined, flags, size: 8, arrayLength };
          }
          cur = { btf: t.sizeOrType };
          continue;
        case BTF_KIND.STRUCT:
          flags |= TYPE_STRUCT;
          break;
        case BTF_KIND.INT:
        case BTF_KIND.FLOAT:
          flags |= TYPE_BASE;
          break;
      }
      const name = t.name === "" ? undefined : t.name;
      let size = 0;
      try {
        size = t.kind === BTF_KIND.FUNC_PROTO || t.kind === BTF_KIND.FWD ? 0 : btf.sizeOf(t.id);
      } catch {
        size = 0;
      }
      return { name, flags, size, arrayLength };
    }
    return { name: undefined, flags, size: 0, arrayLength };
  }

  #skipConst(ref: TypeRef): TypeRef {
    if ("btf" in ref) {
      const t = this.#btf.type(ref.btf);
      if (t.kind === BTF_KIND.CONST) return { btf: t.sizeOrType };
    }
    return ref;
  }
}
