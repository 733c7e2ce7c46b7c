/**
 * The admin token check. The token is separate from client auth (a client's JWT never
 * opens the admin endpoints, and the admin token never opens a sync session). Both sides
 * are hashed to SHA-256 before a `timingSafeEqual`, so the comparison takes the same time
 * whatever the presented token's length or how much of it matches.
 */
import { createHash, timingSafeEqual } from 'node:crypto'

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerOf(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined
  const match = /^Bearer\s+(.+)$/i.exec(header.trim())
  return match === null ? undefined : (match[1] as string).trim()
}

/** A checker for the configured admin token. */
export class AdminToken {
  readonly #expected: Buffer

  constructor(token: string) {
    this.#expected = digest(token)
  }

  /** True when `presented` is the admin token (constant time). */
  matches(presented: string | undefined): boolean {
    // Hash whatever came (even nothing), so a missing token costs what a wrong one does.
    const given = digest(presented ?? '')
    return timingSafeEqual(given, this.#expected) && presented !== undefined
  }
}
