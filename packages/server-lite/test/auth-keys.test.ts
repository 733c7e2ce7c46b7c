/**
 * Asymmetric keys: tokens verified with a PEM public key and with a JWKS fetched from the
 * identity provider's URL; an HS256 token forged with the public key as its secret
 * (algorithm confusion) is rejected.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { AUDIENCE, ISSUER } from './helpers/tokens'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function sign(alg: string, key: Parameters<SignJWT['sign']>[0], sub: string, kid?: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg, ...(kid === undefined ? {} : { kid }) })
    .setSubject(sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setExpirationTime('1h')
    .sign(key)
}

async function helloResult(url: string, token: string): Promise<string> {
  const client = await TestClient.open(url)
  cleanups.push(() => client.close())
  client.hello({ token })
  const reply = await client.waitAny((m) => m.type === 'welcome' || m.type === 'error')
  return reply.type === 'error' ? reply.error.code : reply.type
}

describe('asymmetric keys', () => {
  it('verifies ES256 tokens with a PEM public key and refuses HS256 tokens keyed with that PEM', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
    const pem = await exportSPKI(publicKey)
    const started = await startRelay({ auth: { publicKey: pem, issuer: ISSUER, audience: AUDIENCE } })
    cleanups.push(started.stop)
    expect(await helloResult(started.relay.url, await sign('ES256', privateKey, 'alice'))).toBe('welcome')
    const confused = await sign('HS256', new TextEncoder().encode(pem), 'mallory')
    expect(await helloResult(started.relay.url, confused)).toBe('UNAUTHENTICATED')
  })

  it('verifies RS256 tokens against a JWKS URL', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
    const server: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve())))
    const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
    const started = await startRelay({ auth: { jwksUrl, issuer: ISSUER, audience: AUDIENCE } })
    cleanups.push(started.stop)
    expect(await helloResult(started.relay.url, await sign('RS256', privateKey, 'alice', 'k1'))).toBe('welcome')
    const other = await generateKeyPair('RS256')
    expect(await helloResult(started.relay.url, await sign('RS256', other.privateKey, 'mallory', 'k1'))).toBe('UNAUTHENTICATED')
  })
})
