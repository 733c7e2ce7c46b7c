/** Signed test tokens (jose), and hand-made bad ones. */
import { SignJWT } from 'jose'

/** The HS256 secret test relays use. */
export const SECRET = 'test-secret-that-is-at-least-32-characters-long'
export const ISSUER = 'https://auth.test'
export const AUDIENCE = 'outpost-test'

/** A valid HS256 token for `sub` with extra claims and overrides. */
export async function token(
  sub: string,
  options: { claims?: Record<string, unknown>; secret?: string; issuer?: string; audience?: string; expiresIn?: number; notBefore?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt(now)
    .setNotBefore(options.notBefore ?? now - 1)
    .setExpirationTime(now + (options.expiresIn ?? 3600))
    .sign(new TextEncoder().encode(options.secret ?? SECRET))
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** An unsigned token with `alg: none`. */
export function noneToken(sub: string): string {
  const now = Math.floor(Date.now() / 1000)
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub, iss: ISSUER, aud: AUDIENCE, exp: now + 3600 })}.`
}

/** A valid token whose payload was changed after signing. */
export async function tamperedToken(sub: string): Promise<string> {
  const [header, , signature] = (await token(sub)).split('.')
  const now = Math.floor(Date.now() / 1000)
  return `${header}.${b64({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now + 3600 })}.${signature}`
}

/** Relay auth config matching these tokens. */
export const AUTH = { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, clockToleranceSec: 1 }
