import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

/*
 * Scans this process's own writable memory for byte signatures (test frame pixels and JPEG bytes), to prove that
 * nothing the engine saw survives in it.
 *
 * The scanner must never find its own copies, so the plain signature bytes never exist in this process:
 * - callers hand over needles only in a MASKED form (every byte XOR `mask`);
 * - memory is read raw, and each byte is XORed with the mask in a register while it is compared, so neither the
 *   needle nor an unmasked image of memory is ever written anywhere (a chunk that held memory XORed in place would
 *   itself contain the plain needle for the moment it took to scan the region holding the masked needles);
 * - the one chunk buffer is zeroed after every chunk, so a copy of a real leak cannot be counted twice;
 * - the chunk buffer's own address range is left out: a read that covers the buffer it reads into copies back
 *   what that same read has just put there (duplicates). It is found once, by a random tag written into it.
 *
 * Searching for hundreds of needles one `indexOf` at a time would take minutes, so one pass does them all:
 * every 4-byte window (gram) of every needle goes into a table, and memory is sampled only every
 * `stride = minNeedleLength - 3` bytes. Any occurrence of a needle contains exactly one sampled position whose
 * gram lies wholly inside it, so each occurrence is verified, and counted, exactly once.
 */

/** Byte signatures are kept XORed with this. */
export const DEFAULT_MASK = 0x5a;

const GRAM = 4;
const BLOOM_BITS = 20;
const BLOOM_MASK = (1 << BLOOM_BITS) - 1;

/** Folds a 32-bit gram into BLOOM_BITS bits. (Shifts, not Math.imul: that one is not inlined under jest.) */
const fold = (key: number): number => (key ^ (key >>> 11) ^ (key >>> 22)) & BLOOM_MASK;
const DEFAULT_CHUNK = 4 << 20;
const MAX_NEEDLE = 1024;
const TAG = 32;
const PROBE = 1 << 20;

export interface MemoryRegion {
  start: number;
  end: number;
  perms: string;
  path: string;
}

export interface ScanOptions {
  /** Bytes read per /proc/self/mem read. Default 4 MiB. */
  chunkSize?: number;
}

export interface ScanResult {
  /** Occurrences of all needles together. */
  hits: number;
  /** Occurrences of each needle, in the order given. */
  perNeedle: number[];
  bytesScanned: number;
  /** Mappings read (wholly or partly). */
  regions: number;
  /** Mappings that could not be read at all. */
  unreadable: number;
  ms: number;
}

/** XORs every byte with `mask`, in place (masks and unmasks alike). Returns the same buffer. */
export function xorInPlace<T extends Uint8Array>(buf: T, mask: number): T {
  for (let i = 0; i < buf.length; i++) buf[i] ^= mask;
  return buf;
}

/** The readable, writable, private mappings of this process: where heap, stacks and native buffers live. */
export function writableRegions(): MemoryRegion[] {
  const out: MemoryRegion[] = [];
  for (const line of fs.readFileSync('/proc/self/maps', 'latin1').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, lo, hi, perms, path] = m;
    if (perms[0] !== 'r' || perms[1] !== 'w' || perms[3] !== 'p') continue;
    // The kernel's clock pages and device memory are not ours to read (and can fault or block).
    if (path.startsWith('[vvar') || path === '[vsyscall]' || path.startsWith('/dev/')) continue;
    // User-space addresses are below 2^47, well inside a double's exact integer range.
    out.push({ start: parseInt(lo, 16), end: parseInt(hi, 16), perms, path });
  }
  return out;
}

/** Gram lookup table over the masked needles; keys are masked grams, so it holds no plain bytes either. */
class GramTable {
  readonly stride: number;
  readonly maxLen: number;
  /** A bit per hash of every gram: most memory positions are rejected without touching the Map. */
  readonly bloom = new Uint8Array(1 << (BLOOM_BITS - 3));
  /** masked gram -> flat [needleIndex, offsetInNeedle, ...] */
  private readonly entries = new Map<number, number[]>();

  constructor(readonly needles: readonly Uint8Array[]) {
    if (needles.length === 0) throw new Error('scanMemory needs at least one needle.');
    let minLen = Infinity;
    let maxLen = 0;
    for (const n of needles) {
      minLen = Math.min(minLen, n.length);
      maxLen = Math.max(maxLen, n.length);
    }
    if (minLen < 8) throw new Error('Needles must be at least 8 bytes long (shorter ones match by chance).');
    this.stride = minLen - GRAM + 1;
    this.maxLen = maxLen;
    needles.forEach((n, idx) => {
      // Grams at offsets 0..stride-1 suffice: the sampled gram always starts within the first `stride` bytes.
      for (let off = 0; off < this.stride; off++) {
        const key = (n[off] << 24) | (n[off + 1] << 16) | (n[off + 2] << 8) | n[off + 3] | 0;
        const h = fold(key);
        this.bloom[h >>> 3] |= 1 << (h & 7);
        const list = this.entries.get(key);
        if (list) list.push(idx, off);
        else this.entries.set(key, [idx, off]);
      }
    });
  }

  lookup(key: number): number[] | undefined {
    return this.entries.get(key);
  }
}

/** The chunk buffer, kept for the life of the process (its address is costly to find), and where it lives. */
let scratch: { buf: Buffer; address: number } | undefined;

function scratchBuffer(fd: number, size: number): { buf: Buffer; address: number } {
  if (scratch && scratch.buf.length >= size) return scratch;
  // Large enough to be mmap'ed by malloc, never moved by V8 (array buffer backing stores stay put).
  const buf = Buffer.alloc(size);
  scratch = { buf, address: locate(fd, buf) };
  return scratch;
}

/**
 * Finds the address of `buf` by writing a random tag into it and reading memory for the tag. The first match in
 * address order is `buf` itself: the probe can only hold a second copy made later in the same read. A fresh tag
 * read back at that address confirms it.
 */
function locate(fd: number, buf: Buffer): number {
  const tag = buf.subarray(0, TAG);
  crypto.randomFillSync(tag);
  const probe = Buffer.alloc(PROBE + TAG);
  const check = Buffer.alloc(TAG);
  try {
    for (const r of writableRegions()) {
      for (let pos = r.start; pos < r.end; pos += PROBE) {
        const readStart = Math.max(r.start, pos - TAG);
        const n = readFully(fd, probe, Math.min(r.end, pos + PROBE) - readStart, readStart);
        const at = probe.indexOf(tag);
        probe.fill(0, 0, n);
        if (at >= 0 && at + TAG <= n) {
          crypto.randomFillSync(tag);
          if (readFully(fd, check, TAG, readStart + at) === TAG && check.equals(tag)) return readStart + at;
        }
        if (n < Math.min(r.end, pos + PROBE) - readStart) break;
      }
    }
  } finally {
    tag.fill(0);
    check.fill(0);
  }
  throw new Error('memscan: could not find its own buffer in /proc/self/mem.');
}

/** [start, end) minus [cut, cutEnd). */
function without(start: number, end: number, cut: number, cutEnd: number): [number, number][] {
  if (cutEnd <= start || cut >= end) return [[start, end]];
  const out: [number, number][] = [];
  if (start < cut) out.push([start, cut]);
  if (cutEnd < end) out.push([cutEnd, end]);
  return out;
}

/**
 * Counts occurrences of each needle in this process's writable memory.
 * `maskedNeedles` hold the signatures XORed with `mask`; the plain bytes are never materialised.
 * A needle that straddles two separate mappings is not seen (adjacent mappings with equal rights are merged by the
 * kernel, so this is rare and only matters at region edges).
 */
export function scanMemory(maskedNeedles: readonly Uint8Array[], mask: number, options: ScanOptions = {}): ScanResult {
  const t0 = process.hrtime.bigint();
  const table = new GramTable(maskedNeedles);
  const { stride, maxLen, bloom } = table;
  if (maxLen > MAX_NEEDLE) throw new Error(`Needles must be at most ${MAX_NEEDLE} bytes long.`);
  const chunkSize = Math.max(options.chunkSize ?? DEFAULT_CHUNK, 4096);
  const m = mask & 0xff;
  const mask32 = (m << 24) | (m << 16) | (m << 8) | m;
  const perNeedle = new Array<number>(maskedNeedles.length).fill(0);
  let bytesScanned = 0;
  let regions = 0;
  let unreadable = 0;

  const fd = fs.openSync('/proc/self/mem', 'r');
  const { buf: chunk, address: chunkAt } = scratchBuffer(fd, Math.max(chunkSize, DEFAULT_CHUNK) + 2 * MAX_NEEDLE);
  try {
    for (const r of writableRegions()) {
      let readAny = false;
      let failed = false;
      for (const [start, end] of without(r.start, r.end, chunkAt, chunkAt + chunk.length)) {
        for (let pos = start; pos < end && !failed; pos += chunkSize) {
          // Read maxLen bytes either side of [pos, pos+chunkSize) so needles crossing the chunk edge are whole.
          const readStart = Math.max(start, pos - maxLen);
          const readEnd = Math.min(end, pos + chunkSize + maxLen);
          const n = readFully(fd, chunk, readEnd - readStart, readStart);
          if (n < readEnd - readStart) {
            chunk.fill(0, 0, n);
            failed = true; // an unreadable page (guard, device): skip the rest of this mapping
            break;
          }
          readAny = true;
          bytesScanned += Math.min(end, pos + chunkSize) - pos;
          // Sampled positions are multiples of `stride` from the range start, so each lies in exactly one chunk.
          const first = pos + ((stride - ((pos - start) % stride)) % stride);
          const last = Math.min(pos + chunkSize, end - GRAM + 1);
          for (let q = first - readStart; q < last - readStart; q += stride) {
            const key = ((chunk[q] << 24) | (chunk[q + 1] << 16) | (chunk[q + 2] << 8) | chunk[q + 3]) ^ mask32;
            // Runs for every sampled position (tens of millions per scan): keep it to plain integer operations.
            const h = (key ^ (key >>> 11) ^ (key >>> 22)) & BLOOM_MASK; // fold(), inlined by hand
            if ((bloom[h >>> 3] & (1 << (h & 7))) === 0) continue;
            const list = table.lookup(key);
            if (!list) continue;
            for (let e = 0; e < list.length; e += 2) {
              const idx = list[e];
              const p = q - list[e + 1];
              const needle = maskedNeedles[idx];
              if (p < 0 || p + needle.length > n) continue;
              let j = 0;
              while (j < needle.length && (chunk[p + j] ^ m) === needle[j]) j++;
              if (j === needle.length) perNeedle[idx]++;
            }
          }
          chunk.fill(0, 0, n);
        }
      }
      if (readAny) regions++;
      else unreadable++;
    }
  } finally {
    fs.closeSync(fd);
    chunk.fill(0);
  }
  return {
    hits: perNeedle.reduce((a, b) => a + b, 0),
    perNeedle,
    bytesScanned,
    regions,
    unreadable,
    ms: Number(process.hrtime.bigint() - t0) / 1e6,
  };
}

/** pread until `len` bytes are in `buf` or the kernel refuses; returns the bytes read. */
function readFully(fd: number, buf: Buffer, len: number, position: number): number {
  let done = 0;
  while (done < len) {
    let got: number;
    try {
      got = fs.readSync(fd, buf, done, len - done, position + done);
    } catch {
      return done; // EIO / EFAULT: page not readable
    }
    if (got <= 0) return done;
    done += got;
  }
  return done;
}
