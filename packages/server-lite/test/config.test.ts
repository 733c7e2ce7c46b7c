/**
 * Configuration: flags > environment > file > defaults, and validation errors that name
 * each bad field and say how to fix it.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../src/index'
import { tempDir } from './helpers/client'

const dirs: { remove: () => void }[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove()
})

describe('config', () => {
  it('has the documented defaults', () => {
    const config = parseConfig({})
    expect(config).toMatchObject({ port: 8787, host: '127.0.0.1', dataDir: './.outpost-data', store: 'lmdb', maxDriftMs: 60_000, tombstoneHorizonMs: 30 * 24 * 3600 * 1000 })
    expect(config.limits.maxFrameBytes).toBe(1024 * 1024)
    // The limits the README documents (packages/server-lite/README.md, Limits).
    expect(config.limits).toMatchObject({
      opsPerSecond: 2_000,
      opsBurst: 20_000,
      subjectOpsPerSecond: 5_000,
      subjectOpsBurst: 40_000,
      maxQueuedBytesPerConnection: 4 * 1024 * 1024,
      maxQueuedBytes: 64 * 1024 * 1024,
      maxBufferedBytesPerConnection: 16 * 1024 * 1024,
      helloTimeoutMs: 10_000,
      heartbeatMs: 10_000,
    })
    expect(config.auth).toBeUndefined()
  })

  it('refuses a send buffer smaller than one frame', () => {
    expect(() => parseConfig({ limits: { maxFrameBytes: 4 * 1024 * 1024, maxBufferedBytesPerConnection: 1024 * 1024 } })).toThrow(/maxBufferedBytesPerConnection must be at least maxFrameBytes/)
  })

  it('merges flags over env over file', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const file = join(dir.path, 'outpost.json')
    writeFileSync(file, JSON.stringify({ port: 1000, host: '0.0.0.0', rules: { maps: { '*': { read: 'authenticated' } } } }))
    const config = await loadConfig({ argv: ['--config', file, '--port', '3000'], env: { OUTPOST_PORT: '2000', OUTPOST_DATA_DIR: 'data', OUTPOST_JWT_SECRET: 'x'.repeat(40) }, cwd: dir.path })
    expect(config.port).toBe(3000)
    expect(config.host).toBe('0.0.0.0')
    expect(config.dataDir).toBe(join(dir.path, 'data'))
    expect(config.auth?.secret).toBe('x'.repeat(40))
    expect(config.auth?.algorithms).toEqual(['HS256', 'RS256', 'ES256', 'EdDSA'])
    expect(config.rules?.maps['*']?.read).toBe('authenticated')
    expect((await loadConfig({ env: { OUTPOST_PORT: '2000' } })).port).toBe(2000)
  })

  it('lists every bad field with what to do', async () => {
    let caught: unknown
    try {
      await loadConfig({ argv: ['--port', 'eighty', '--jwt-secret', 'short'], env: {} })
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(ConfigError)
    const message = (caught as ConfigError).message
    expect(message).toMatch(/port: /)
    expect(message).toMatch(/auth\.secret: an HMAC secret must be at least 32 characters/)
    expect(() => parseConfig({ auth: { secret: 'y'.repeat(40), algorithms: ['none'] } })).toThrow(/"none" is never accepted/)
    expect(() => parseConfig({ auth: {} })).toThrow(/auth needs one of secret/)
    await expect(loadConfig({ argv: ['--bogus', '1'], env: {} })).rejects.toThrow(/--bogus: unknown flag/)
  })
})

describe('schema config', () => {
  it('takes --schema relative to the working directory and --schema-mode optional|strict', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const config = await loadConfig({ argv: ['--schema', 'schemas.js', '--schema-mode', 'strict'], env: {}, cwd: dir.path })
    expect(config.schema).toBe(join(dir.path, 'schemas.js'))
    expect(config.schemaMode).toBe('strict')
    expect(parseConfig({}).schemaMode).toBe('optional')
    expect(() => parseConfig({ schemaMode: 'lenient' })).toThrow(/schemaMode must be "optional" or "strict"/)
  })

  it('refuses to start with a schema module that exports no valid schemas, saying what is wrong', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const path = join(dir.path, 'schemas.mjs')
    writeFileSync(path, 'export const schemas = { tasks: { version: 2, schema: { "~standard": { validate: () => ({ value: {} }) } } } }\n')
    const { createRelay } = await import('../src/index')
    await expect(createRelay({ port: 0, dataDir: dir.path, logLevel: 'silent', schema: path })).rejects.toThrow(/migrations\[1\].*missing/)
  })
})
