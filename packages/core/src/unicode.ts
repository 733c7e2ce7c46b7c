/**
 * Well-formed text. JavaScript strings are UTF-16 code units and may hold a lone
 * surrogate; the wire (msgpack) carries UTF-8, which cannot encode one. An encoder either
 * writes bytes no decoder accepts (WTF-8) or substitutes U+FFFD, so a writer keeping
 * `'a\ud800b'` and every other replica holding `'a\ufffdb'` would differ for good while
 * both believe they agree. Outpost therefore accepts only well-formed strings: checked on
 * every value at write time ({@link isWellFormed}) and on every string in a frame
 * ({@link isWellFormedUtf8}).
 */

/** Matches a high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g')

// ES2024's String.prototype.isWellFormed (Node 20, Chromium 111, Safari 16.4) is native and fast; the regex covers older engines.
const nativeIsWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed

/** True when `text` has no lone surrogate, so it survives UTF-8 (and every other replica) unchanged. */
export function isWellFormed(text: string): boolean {
  return nativeIsWellFormed !== undefined ? nativeIsWellFormed.call(text) : !LONE_SURROGATE.test(text)
}

/** `text` with each lone surrogate written as a `\uXXXX` escape: safe to put in an error message that travels. */
export function printable(text: string): string {
  return isWellFormed(text) ? text : text.replace(LONE_SURROGATES, (unit) => `\\u${unit.charCodeAt(0).toString(16)}`)
}

/**
 * True when `bytes[start, end)` is well-formed UTF-8 (RFC 3629): no stray continuation
 * bytes, no overlong forms, no encoded surrogates (U+D800–DFFF), nothing above U+10FFFF,
 * no truncated sequence.
 */
export function isWellFormedUtf8(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start
  while (i < end) {
    const lead = bytes[i] as number
    if (lead < 0x80) {
      i++
      continue
    }
    if (lead < 0xc2) return false // a continuation byte, or an overlong 2-byte form
    if (lead < 0xe0) {
      if (i + 1 >= end || ((bytes[i + 1] as number) & 0xc0) !== 0x80) return false
      i += 2
      continue
    }
    if (lead < 0xf0) {
      if (i + 2 >= end) return false
      const b1 = bytes[i + 1] as number
      if ((b1 & 0xc0) !== 0x80 || ((bytes[i + 2] as number) & 0xc0) !== 0x80) return false
      if (lead === 0xe0 && b1 < 0xa0) return false // overlong
      if (lead === 0xed && b1 >= 0xa0) return false // a surrogate
      i += 3
      continue
    }
    if (lead < 0xf5) {
      if (i + 3 >= end) return false
      const b1 = bytes[i + 1] as number
      if ((b1 & 0xc0) !== 0x80 || ((bytes[i + 2] as number) & 0xc0) !== 0x80 || ((bytes[i + 3] as number) & 0xc0) !== 0x80) return false
      if (lead === 0xf0 && b1 < 0x90) return false // overlong
      if (lead === 0xf4 && b1 >= 0x90) return false // above U+10FFFF
      i += 4
      continue
    }
    return false
  }
  return true
}
