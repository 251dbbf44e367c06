/**
 * Larger reads from @chainsafe/libp2p-quic's native streams (DECISIONS 31).
 *
 * The library's stream class asks its native stream for at most 4 KiB per read (a constant in its
 * JavaScript, no option), so a 50 KB envelope reaches us in ~13 reads, each an N-API promise resolved
 * through the event loop. The native `read(maxLength)` returns a buffer of exactly the bytes it had,
 * so asking for up to `QUIC_READ_BYTES` costs no memory for small reads and lets a whole envelope
 * arrive in one. Measured on these machines (`npm run bench:transport -- --only quic`): one stream
 * 56 -> 171 MB/s, CPU per MB 22.8 -> 8.9 ms.
 *
 * The class is reached through the library's own binding module, beside its entry point: this is
 * the one place we depend on the library's layout. If the layout changes, nothing is patched, the
 * transport works as shipped (4 KiB reads) and `widenQuicReads()` resolves false; the transport tests
 * check that a large message arrives in a few reads, so an upgrade that loses this fails them.
 */

/** Upper bound of one native read. Memory is bounded by what QUIC already buffered, not by this. */
export const QUIC_READ_BYTES = 65_536;

// A registered symbol: this module may be evaluated more than once (test isolation) while the native
// class is shared, and must not wrap `read` twice.
const WIDENED = Symbol.for('aftersmtp.quicReadsWidened');

interface NativeStreamPrototype {
  read: (maxLength: number) => Promise<Uint8Array | null | undefined>;
  [WIDENED]?: true;
}

let widening: Promise<boolean> | undefined;

/** Patches the native stream class once per process; resolves whether reads are widened. */
export function widenQuicReads(): Promise<boolean> {
  widening ??= (async () => {
    let proto: NativeStreamPrototype | undefined;
    try {
      const binding = (await import(new URL('./napi.js', import.meta.resolve('@chainsafe/libp2p-quic')).href)) as {
        Stream?: { prototype?: NativeStreamPrototype };
      };
      proto = binding.Stream?.prototype;
    } catch {
      return false;
    }
    if (proto === undefined || typeof proto.read !== 'function') return false;
    if (proto[WIDENED]) return true;
    const read = proto.read;
    proto.read = function (this: unknown, maxLength: number) {
      return read.call(this, maxLength < QUIC_READ_BYTES ? QUIC_READ_BYTES : maxLength);
    };
    proto[WIDENED] = true;
    return true;
  })();
  return widening;
}
