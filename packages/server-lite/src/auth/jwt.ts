/**
 * Token verification with `jose`: one {@link Authenticator} per relay, built from the
 * `auth` config. Tokens arrive in `hello` only (never in a URL, where they would end up in
 * access logs).
 *
 * Without auth configured every session is the anonymous subject with no claims; the relay
 * logs a warning at start so nobody ships that by accident.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import { AuthError, TokenExpiredError } from '@outpost/core'
import type { RelayConfig } from '../config'

/** Who a session belongs to. */
export interface Principal {
  /** The token's `sub`, or `'anonymous'` without auth. */
  readonly subject: string
  /** The verified token claims (`{}` when anonymous). */
  readonly claims: Readonly<Record<string, unknown>>
  /** Token expiry (ms since epoch), or null when it never expires. */
  readonly expiresAt: number | null
  /** True when a token was verified (rule `'authenticated'`). */
  readonly authenticated: boolean
}

/** The subject of sessions on a relay without auth. */
export const ANONYMOUS = 'anonymous'

/** Verifies `hello` tokens. */
export interface Authenticator {
  /** True when auth is configured (tokens required). */
  readonly enabled: boolean
  /** Resolves the principal of a token; throws {@link AuthError} or {@link TokenExpiredError}. */
  authenticate(token: string | undefined): Promise<Principal>
}

/** Builds the authenticator for `config.auth` (anonymous when absent). */
export function createAuthenticator(config: RelayConfig): Authenticator {
  const auth = config.auth
  if (auth === undefined) {
    return {
      enabled: false,
      authenticate: () => Promise.resolve({ subject: ANONYMOUS, claims: {}, expiresAt: null, authenticated: false }),
    }
  }
  const keys: (Uint8Array | KeyObject | JWTVerifyGetKey)[] = []
  const hmac = auth.algorithms.filter((a) => a.startsWith('HS'))
  const asymmetric = auth.algorithms.filter((a) => !a.startsWith('HS'))
  if (auth.secret !== undefined && hmac.length > 0) keys.push(new TextEncoder().encode(auth.secret))
  if (auth.publicKey !== undefined && asymmetric.length > 0) keys.push(createPublicKey(auth.publicKey))
  if (auth.jwksUrl !== undefined && asymmetric.length > 0) keys.push(createRemoteJWKSet(new URL(auth.jwksUrl)))

  const verifyWith = async (token: string, key: Uint8Array | KeyObject | JWTVerifyGetKey): Promise<JWTPayload> => {
    const options = {
      // A secret only verifies HMAC tokens and a public key only asymmetric ones: no algorithm confusion.
      algorithms: key instanceof Uint8Array ? hmac : asymmetric,
      clockTolerance: auth.clockToleranceSec,
      ...(auth.issuer === undefined ? {} : { issuer: auth.issuer }),
      ...(auth.audience === undefined ? {} : { audience: auth.audience }),
    }
    const result = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options)
    return result.payload
  }

  return {
    enabled: true,
    async authenticate(token) {
      if (token === undefined || token === '') {
        throw new AuthError('This relay requires a token: pass your JWT as `token` in hello (the client `auth` option)')
      }
      let lastError: unknown
      for (const key of keys) {
        try {
          const payload = await verifyWith(token, key)
          if (typeof payload.sub !== 'string' || payload.sub === '') {
            throw new AuthError('The token has no `sub` claim; the relay binds replicas and rules to it')
          }
          return {
            subject: payload.sub,
            claims: payload as Record<string, unknown>,
            expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
            authenticated: true,
          }
        } catch (error) {
          if (error instanceof joseErrors.JWTExpired) {
            throw new TokenExpiredError('The token has expired; get a fresh one from your auth callback and reconnect')
          }
          if (error instanceof AuthError) throw error
          lastError = error
        }
      }
      throw new AuthError(`The token was rejected: ${describeJoseError(lastError)}`, { reason: joseCode(lastError) })
    },
  }
}

function joseCode(error: unknown): string {
  return error instanceof joseErrors.JOSEError ? error.code : 'ERR_UNKNOWN'
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim "${error.claim}" failed (${error.reason}); check the token's iss/aud/nbf`
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'its algorithm is not allowed by this relay'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not verify with the configured key'
  if (error instanceof joseErrors.JOSEError) return error.message
  return 'it is not a valid JWT'
}
