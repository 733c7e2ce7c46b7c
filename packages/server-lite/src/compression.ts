/**
 * Compression of large WebSocket frames: permessage-deflate (RFC 7692), which browsers
 * and the `ws` client negotiate on their own, so clients need no code and no option.
 *
 * On by default, for frames of at least {@link DEFAULT_COMPRESSION_THRESHOLD}: initial
 * slices and catch-up, where the bytes are. A live change or an ack goes out as it is,
 * costing no CPU and no latency. Measured with `bench/wire/wire-bytes.ts` and zlib on
 * 2,000-record frames: an initial sync takes 2.5–8× fewer bytes (v2: 161 → 57 B/record
 * for varied English titles, → 14–20 for the benchmark's repeated filler), for ~15% more
 * relay CPU, which zlib spends on libuv's thread pool, off the event loop.
 *
 * The settings keep what a connection costs small. Each frame is compressed on its own
 * (no context takeover, which is also what lets `ws` skip frames under the threshold):
 * a 1 MiB frame loses little without the previous one. A 4 KiB window and zlib memLevel 4
 * hold the deflate state to ~24 KiB per connection that was sent a large frame (the
 * defaults take ~256 KiB, for 7% fewer bytes); level 1 deflates ~4× faster than the
 * default level 6 for ~11% more bytes.
 */
import type { PerMessageDeflateOptions } from 'ws'

/** Smallest frame compressed when `compression` is `true`: slice frames are, live ones are not. */
export const DEFAULT_COMPRESSION_THRESHOLD = 16 * 1024

/** The `ws` server option for the relay's `compression` setting (`false`, `true`, or a threshold in bytes). */
export function perMessageDeflate(compression: boolean | number): PerMessageDeflateOptions | false {
  if (compression === false) return false
  return {
    threshold: compression === true ? DEFAULT_COMPRESSION_THRESHOLD : compression,
    // Without it `ws` compresses every frame, whatever the threshold.
    serverNoContextTakeover: true,
    serverMaxWindowBits: 12,
    zlibDeflateOptions: { level: 1, memLevel: 4 },
  }
}
