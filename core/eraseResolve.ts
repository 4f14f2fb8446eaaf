/**
 * Resolving filter commands (core/filterConfig.ts) into byte ranges to erase, as makedumpfile's
 * erase_info.c does: an expression `sym.a.b` is a chain of entries; a pointer along the chain is followed
 * (its value becomes the base of the next member); the last entry's address and size are erased (a `char *`
 * erases the string it points to, strlen up to 1024; an array erases all its elements; `nullify` zeroes
 * the pointer itself); `size` gives a byte count or names a base-type symbol/member whose value is the
 * count. Loops walk an array (every element, skipping NULL pointers in arrays of pointers), a linked list
 * of structs via a `next`-like member, or a list_head list within StructName:member (default member
 * `list`). Ranges are kept sorted by physical address; a second range at the same address only widens the
 * first (and gets no ERASEINFO line of its own), as in makedumpfile.
 *
 * Unlike makedumpfile, which prints a message and skips the command, a symbol, member or type that cannot
 * be found is an error here, naming what is missing.
 */
import { VmsiftError } from "./errors.ts";
import type { EraseStatement, FilterCommand } from "./filterConfig.ts";
import {
  type KernelTypes,
  TYPE_ARRAY,
  TYPE_BASE,
  TYPE_LIST_HEAD,
  TYPE_PTR,
  TYPE_STRUCT,
} from "./kernelTypes.ts";
import type { VirtualMemory } from "./virtMem.ts";

const FILTER = 0x1, SIZE = 0x2, ITERATION = 0x4, LIST = 0x8, SYMBOL = 0x10, VAR = 0x20, TRAVERSAL = 0x40;
const RESOLVED = 0x8000;
const STRLEN_MAX = 1024;

/** One range to erase (makedumpfile's filter_info). */
export interface FilterRange {
  /** Kernel virtual address of the first byte. */
  vaddr: bigint;
  /** Its physical address. */
  paddr: number;
  /** Bytes to erase. */
  size: number;
  /** Zero the bytes (a pointer) instead of writing 'X'. */
  nullify: boolean;
  /** Index into EraseResolution.infos, -1 when merged into another range at the same address. */
  info: number;
  /** Which iteration of the command (index into the info's sizes). */
  sizeIndex: number;
}

/** One erase command's ERASEINFO record (makedumpfile's erase_info). */
export interface EraseInfo {
  /** The symbol expression as written. */
  expr: string;
  /** Ranges made for it (one per loop iteration). */
  numSizes: number;
}

/** All ranges, sorted by paddr, and the records they refer to. */
export interface EraseResolution {
  /** Ranges to erase, sorted by physical address. */
  ranges: FilterRange[];
  /** ERASEINFO records, in the order the commands were resolved. */
  infos: EraseInfo[];
}

interface Entry {
  name?: string;
  flag: number;
  line: number;
  typeName?: string;
  typeFlag: number;
  symAddr: bigint;
  vaddr: bigint;
  offset: number;
  size: number;
  arrayLength: number;
  index: number;
  cmpAddr: bigint;
  nullify: boolean;
  next?: Entry;
  referTo?: Entry;
  /** For filter entries: the statement, and its record once one was made. */
  stmt?: EraseStatement;
  info: number;
}

function newEntry(name: string | undefined, flag: number, line: number): Entry {
  return {
    name,
    flag,
    line,
    typeFlag: 0,
    symAddr: 0n,
    vaddr: 0n,
    offset: 0,
    size: 0,
    arrayLength: 0,
    index: 0,
    cmpAddr: 0n,
    nullify: false,
    info: -1,
  };
}

/** Resolve every command; `source` names the configuration in errors. */
export function resolveErase(
  commands: FilterCommand[],
  types: KernelTypes,
  vm: VirtualMemory,
  source: string,
): EraseResolution {
  return new Resolver(types, vm, source).run(commands);
}

class Resolver {
  readonly ranges: FilterRange[] = [];
  readonly infos: EraseInfo[] = [];
  constructor(readonly types: KernelTypes, readonly vm: VirtualMemory, readonly source: string) {}

  fail(line: number, what: string): never {
    throw new VmsiftError(line > 0 ? `line ${line}: ${what}` : what, { file: this.source });
  }

  run(commands: FilterCommand[]): EraseResolution {
    for (const c of commands) this.process(c);
    return { ranges: this.ranges, infos: this.infos };
  }

  /** create_config_entry(): a dotted expression as a chain. */
  chain(token: string, flag: number, line: number): Entry {
    const parts = token.split(".").filter((p) => p !== "");
    if (parts.length === 0) this.fail(line, `empty expression '${token}'`);
    let head: Entry | undefined, prev: Entry | undefined;
    parts.forEach((p, depth) => {
      const e = newEntry(undefined, flag | (depth === 0 ? SYMBOL : 0), line);
      if (flag & ITERATION && depth > 0) this.fail(line, "invalid iteration variable entry");
      if (flag & (ITERATION | FILTER | LIST)) e.name = p;
      if (flag & SIZE) {
        const m = depth === 0 ? /^([+-]?\d+)(.?)/.exec(p) : null;
        if (m !== null) {
          const n = Number(m[1]);
          if (n < 0) this.fail(line, "size value must be positive");
          e.size = n * ({ M: 1 << 20, m: 1 << 20, K: 1024, k: 1024 }[m[2]] ?? 1);
          e.flag |= RESOLVED;
        } else {
          e.name = p;
        }
      }
      if (prev) prev.next = e;
      else head = e;
      prev = e;
    });
    return head!;
  }

  readPointer(vaddr: bigint): bigint {
    const b = new Uint8Array(8);
    return this.vm.readVirt(vaddr, b) ? new DataView(b.buffer).getBigUint64(0, true) : 0n;
  }

  strlen(vaddr: bigint): number {
    const b = new Uint8Array(STRLEN_MAX);
    if (!this.vm.readVirt(vaddr, b)) return 0;
    const z = b.indexOf(0);
    return z < 0 ? STRLEN_MAX : z;
  }

  /** resolve_config_entry(). */
  resolve(ce: Entry, baseVaddr: bigint, baseStruct: string | undefined): boolean {
    if (ce.flag & SYMBOL) {
      const addr = this.types.symbolAddress(ce.name!);
      if (addr === undefined) this.fail(ce.line, `no symbol '${ce.name}' in the kernel's symbols`);
      ce.symAddr = addr;
      const t = this.types.symbolType(ce.name!);
      if (t === undefined) {
        // `erase SYMBOL size N` needs no type: the bytes at the symbol's address (`nullify` needs a pointer).
        const st = ce.stmt;
        if (ce.flag & FILTER && !ce.next && st !== undefined && st.size !== undefined && !st.nullify) {
          ce.typeName = "(untyped)";
          ce.vaddr = ce.symAddr;
          ce.flag |= RESOLVED;
          return true;
        }
        this.fail(
          ce.line,
          `the type of '${ce.name}' is unknown (give a size): ${this.types.describeSymbolTypes()}`,
        );
      }
      ce.typeName = t.name;
      ce.size = t.size;
      ce.typeFlag = t.flags;
      ce.arrayLength = t.flags & TYPE_ARRAY ? t.arrayLength : 0;
    } else if (ce.flag & VAR) {
      const r = ce.referTo!;
      ce.vaddr = r.vaddr;
      ce.symAddr = r.symAddr;
      ce.size = r.size;
      ce.typeFlag = r.typeFlag;
      ce.typeName ??= r.typeName;
      if (ce.next) ce.next.flag &= ~RESOLVED;
      return true;
    } else {
      if (baseStruct === undefined) this.fail(ce.line, `'${ce.name}' follows a member that is not a struct`);
      const off = this.types.memberOffset(baseStruct, ce.name!);
      const t = this.types.memberType(baseStruct, ce.name!);
      if (off === undefined || t === undefined) {
        this.fail(ce.line, `struct '${baseStruct}' has no member with name '${ce.name}'`);
      }
      ce.offset = off;
      ce.symAddr = baseVaddr + BigInt(off);
      ce.typeName = t.name;
      ce.size = t.size;
      ce.typeFlag = t.flags;
      ce.arrayLength = t.flags & TYPE_ARRAY ? t.arrayLength : 0;
    }
    if (ce.typeName === undefined) {
      this.fail(ce.line, `'${ce.name}' has an anonymous type: cannot follow it`);
    }
    if (ce.typeName === "list_head") {
      ce.typeFlag |= TYPE_LIST_HEAD;
      if (ce.flag & LIST && ce.next) {
        if (ce.next.next) this.fail(ce.line, "only one traversal entry is allowed for a list_head list");
        ce.next.flag |= TRAVERSAL;
      }
    }
    ce.vaddr = ce.symAddr;
    if (ce.size < 0) ce.size = 0;
    if (ce.flag & LIST && !ce.next) {
      if ((ce.typeFlag & (TYPE_BASE | TYPE_ARRAY)) === TYPE_BASE && ce.typeName !== "void") {
        this.fail(ce.line, `'${ce.name}' is not an array, a struct pointer or a list_head`);
      }
      if (ce.typeFlag & TYPE_LIST_HEAD || (ce.typeFlag & (TYPE_STRUCT | TYPE_ARRAY)) === TYPE_STRUCT) {
        if (!(ce.flag & TRAVERSAL)) {
          ce.next = newEntry("next", LIST | TRAVERSAL, ce.line);
        }
      }
      if (ce.flag & TRAVERSAL && baseStruct !== ce.typeName) {
        this.fail(ce.line, `'${ce.name}' is not of the type of its struct (${baseStruct})`);
      }
    }
    if ((ce.typeFlag & (TYPE_ARRAY | TYPE_PTR)) === TYPE_PTR) {
      ce.vaddr = this.readPointer(ce.symAddr);
      if (ce.typeName === "void") ce.size = 0;
    }
    if (ce.typeFlag & TYPE_BASE && ce.typeFlag & TYPE_PTR && !(ce.typeFlag & TYPE_ARRAY)) {
      if (ce.typeName === "char") ce.size = this.strlen(ce.vaddr);
    }
    if (!ce.next && ce.flag & SIZE) {
      if ((ce.typeFlag & (TYPE_ARRAY | TYPE_BASE)) !== TYPE_BASE || ce.size > 8) {
        this.fail(ce.line, `size symbol/member '${ce.name}' is not of base type`);
      }
      const b = new Uint8Array(8);
      if (!this.vm.readVirt(ce.vaddr, b.subarray(0, ce.size))) {
        this.fail(ce.line, `cannot read the value of '${ce.name}'`);
      }
      const dv = new DataView(b.buffer);
      ce.size = ce.size === 1
        ? b[0]
        : ce.size === 2
        ? dv.getUint16(0, true)
        : ce.size === 4
        ? dv.getUint32(0, true)
        : Number(BigInt.asIntN(64, dv.getBigUint64(0, true)));
    }
    ce.flag |= RESOLVED;
    if (ce.next) ce.next.flag &= ~RESOLVED;
    return true;
  }

  /** get_config_symbol_addr(). */
  addr(ce: Entry, base: bigint, baseStruct: string | undefined): bigint {
    if (!(ce.flag & RESOLVED)) this.resolve(ce, base, baseStruct);
    if (ce.next && ce.vaddr !== 0n) {
      ce.next.nullify = ce.nullify;
      return this.addr(ce.next, ce.vaddr, ce.typeName);
    }
    if (!ce.next && ce.nullify) return ce.typeFlag & TYPE_PTR ? ce.symAddr : 0n;
    return ce.vaddr;
  }

  /** get_config_symbol_size(). */
  sizeOf(ce: Entry, base: bigint, baseStruct: string | undefined): number {
    if (!(ce.flag & RESOLVED)) this.resolve(ce, base, baseStruct);
    if (ce.next && ce.vaddr !== 0n) return this.sizeOf(ce.next, ce.vaddr, ce.typeName);
    if (ce.typeFlag & TYPE_ARRAY) return ce.arrayLength * (ce.typeFlag & TYPE_PTR ? 8 : ce.size);
    return ce.size;
  }

  /** get_next_list_entry(): the next element into `out`; false at the end. */
  nextListEntry(ce: Entry, base: bigint, baseStruct: string | undefined, out: Entry): boolean {
    if (!(ce.flag & LIST)) return false;
    if (!(ce.flag & RESOLVED)) this.resolve(ce, base, baseStruct);
    if (!ce.next) {
      if (ce.typeFlag & TYPE_ARRAY) {
        if (ce.index === ce.arrayLength) return false;
        if (ce.typeFlag & TYPE_PTR) {
          let v = 0n;
          while (ce.index < ce.arrayLength) {
            v = this.readPointer(ce.vaddr + BigInt(ce.index * 8));
            if (v !== 0n) break;
            ce.index++;
          }
          if (ce.index === ce.arrayLength) return false;
          out.symAddr = ce.vaddr + BigInt(ce.index * 8);
          out.vaddr = v;
          out.size = ce.typeName === "char" ? this.strlen(v) : ce.size;
        } else {
          out.symAddr = ce.vaddr + BigInt(ce.index * ce.size);
          out.vaddr = out.symAddr;
          out.size = ce.size;
        }
        ce.index++;
      } else {
        if (ce.vaddr === ce.cmpAddr) return false;
        out.vaddr = ce.vaddr;
        ce.flag &= ~RESOLVED;
      }
      return true;
    }
    if (!ce.next.next && !(ce.next.typeFlag & TYPE_ARRAY)) {
      if (!(ce.typeFlag & TYPE_LIST_HEAD)) {
        if (ce.vaddr === 0n || ce.vaddr === ce.next.cmpAddr) return false;
        if (ce.next.cmpAddr === 0n) ce.next.cmpAddr = ce.vaddr; // against circular lists
        out.vaddr = ce.vaddr;
        out.symAddr = ce.symAddr;
        out.size = ce.size;
        ce.symAddr = ce.next.symAddr;
        ce.vaddr = ce.next.vaddr;
        if (ce.vaddr !== 0n) this.resolve(ce.next, ce.vaddr, ce.typeName);
        return true;
      }
      ce.symAddr = ce.next.symAddr;
      ce.vaddr = ce.next.vaddr;
    }
    if (ce.next && ce.vaddr !== 0n) return this.nextListEntry(ce.next, ce.vaddr, ce.typeName, out);
    return false;
  }

  /** resolve_list_entry(). */
  resolveList(
    ce: Entry,
    base: bigint,
    baseStruct: string | undefined,
  ): { typeName?: string; typeFlag: number } {
    if (!(ce.flag & RESOLVED)) this.resolve(ce, base, baseStruct);
    if (ce.next && ce.next.flag & TRAVERSAL && ce.typeFlag & TYPE_ARRAY) ce.next = undefined; // 'via' not needed
    if (ce.typeFlag & TYPE_LIST_HEAD && ce.next && ce.next.flag & TRAVERSAL) ce.next.cmpAddr = ce.symAddr;
    if (ce.next && ce.vaddr !== 0n) return this.resolveList(ce.next, ce.vaddr, ce.typeName);
    ce.index = 0;
    return { typeName: ce.typeName, typeFlag: ce.typeFlag };
  }

  /** initialize_iteration_entry(). */
  initIteration(ie: Entry, typeName: string | undefined, typeFlag: number): void {
    if (typeFlag & TYPE_LIST_HEAD) {
      if (ie.typeName === undefined) {
        this.fail(ie.line, "use 'within' to give StructName:ListHeadMember for a list_head list");
      }
      if (!ie.next) ie.next = newEntry("list", ITERATION, ie.line);
      const size = this.types.structSize(ie.typeName);
      if (size === undefined) this.fail(ie.line, `no structure '${ie.typeName}' in the kernel's BTF`);
      ie.size = size;
      this.resolve(ie.next, 0n, ie.typeName);
      if (ie.next.typeName !== "list_head") {
        this.fail(ie.next.line, `member '${ie.next.name}' is not of 'list_head' type`);
      }
      ie.typeFlag = TYPE_STRUCT;
    } else {
      if (ie.typeName !== undefined) ie.next = undefined; // 'within' not needed for arrays and struct lists
      ie.typeName = typeName;
      ie.typeFlag = typeFlag & ~TYPE_ARRAY;
    }
  }

  /** list_entry_empty(): loads the next element into the iteration entry. */
  listEmpty(le: Entry, ie: Entry): boolean {
    const ce = newEntry(undefined, 0, 0);
    if (!this.nextListEntry(le, 0n, undefined, ce)) return true;
    if (ie.next) {
      ie.next.vaddr = ce.vaddr;
      ie.vaddr = ce.vaddr - BigInt(ie.next.offset);
    } else {
      ie.vaddr = ce.vaddr;
      ie.symAddr = ce.symAddr;
      ie.size = ce.size;
    }
    return false;
  }

  /** update_filter_info(). */
  filter(fs: Entry, ss: Entry | undefined): void {
    const addr = this.addr(fs, 0n, undefined);
    if (addr === 0n) return;
    const size = fs.nullify ? 8 : ss ? this.sizeOf(ss, 0n, undefined) : this.sizeOf(fs, 0n, undefined);
    if (size <= 0) return;
    const paddr = this.vm.vtop(addr);
    if (paddr === undefined) {
      this.fail(fs.line, `'${fs.stmt!.expr}' is at 0x${addr.toString(16)}, which is not mapped`);
    }
    const r: FilterRange = { vaddr: addr, paddr, size, nullify: fs.nullify, info: -1, sizeIndex: 0 };
    // insert_filter_info(): sorted by paddr; the same paddr only widens the first range.
    let i = 0;
    while (i < this.ranges.length && this.ranges[i].paddr < paddr) i++;
    const same = this.ranges[i];
    if (same !== undefined && same.paddr === paddr) {
      if (size > same.size) same.size = size;
      return;
    }
    this.ranges.splice(i, 0, r);
    if (fs.info >= 0) {
      this.infos[fs.info].numSizes++;
    } else {
      fs.info = this.infos.length;
      this.infos.push({ expr: fs.stmt!.expr, numSizes: 1 });
    }
    r.info = fs.info;
    r.sizeIndex = this.infos[fs.info].numSizes - 1;
  }

  /** read_erase_cmd_entry() + process_config(). */
  process(c: FilterCommand): void {
    let iter: Entry | undefined, list: Entry | undefined;
    if (c.loop) {
      iter = this.chain(c.loop.variable, ITERATION, c.line);
      list = this.chain(c.loop.list, LIST, c.line);
      if (c.loop.via !== undefined) {
        let last = list;
        while (last.next) last = last.next;
        last.next = this.chain(c.loop.via, LIST, c.line);
        last.next.flag = (last.next.flag | TRAVERSAL) & ~SYMBOL;
      } else if (c.loop.within !== undefined) {
        const [struct, member] = c.loop.within.split(":");
        if (member !== undefined) {
          iter.next = this.chain(member, ITERATION, c.line);
          iter.next.flag &= ~SYMBOL;
        }
        iter.typeName = struct;
      }
    }
    const filters: [Entry, Entry | undefined][] = c.erases.map((st) => {
      const fs = this.chain(st.expr, FILTER, st.line);
      fs.stmt = st;
      fs.nullify = st.nullify;
      let ss: Entry | undefined;
      if (st.size !== undefined) {
        ss = this.chain(st.size, SIZE, st.line);
        if (iter && ss.name === iter.name) {
          ss.flag = (ss.flag & ~SYMBOL) | VAR;
          ss.referTo = iter;
        }
      }
      if (iter) {
        fs.flag = (fs.flag & ~SYMBOL) | VAR;
        fs.referTo = iter;
      }
      return [fs, ss];
    });
    if (!list || !iter) {
      this.filter(filters[0][0], filters[0][1]);
      return;
    }
    const t = this.resolveList(list, 0n, undefined);
    this.initIteration(iter, t.typeName, t.typeFlag);
    for (let guard = 0; !this.listEmpty(list, iter); guard++) {
      if (guard > 10_000_000) this.fail(c.line, "the list does not end");
      for (const [fs, ss] of filters) this.filter(fs, ss);
    }
  }
}
