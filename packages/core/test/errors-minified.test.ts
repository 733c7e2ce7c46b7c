/**
 * Error names survive a production build. Apps ship Outpost minified, and a minifier
 * renames classes, so a name taken from the class (`new.target.name`) reads `_e` or `pe`
 * in production. This test builds `src/errors.ts` minified with Vite (as an app would),
 * imports the result, and checks that every error class still says its own name.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { build } from 'vite'
import * as source from '../src/errors'

let outDir: string
let minified: Record<string, unknown>

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'outpost-errors-min-'))
  await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      outDir,
      minify: true,
      lib: { entry: new URL('../src/errors.ts', import.meta.url).pathname, formats: ['es'], fileName: 'errors' },
    },
  })
  minified = (await import(pathToFileURL(join(outDir, 'errors.js')).href)) as Record<string, unknown>
}, 60_000)

afterAll(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true })
})

/** The exported error classes: every export that is `OutpostError` or extends it. */
function errorClasses(module: Record<string, unknown>): [string, new (...args: string[]) => Error][] {
  const root = module['OutpostError'] as abstract new (...args: never[]) => Error
  return Object.entries(module).filter((entry): entry is [string, new (...args: string[]) => Error] => typeof entry[1] === 'function' && (entry[1] === root || entry[1].prototype instanceof root))
}

describe('error names in a minified build', () => {
  it('the build really renamed the classes (otherwise this test proves nothing)', () => {
    const renamed = errorClasses(minified).filter(([exported, cls]) => cls.name !== exported)
    expect(renamed.length).toBeGreaterThan(10)
  })

  it('every error class keeps its own name, also when rebuilt from a serialized error', () => {
    const classes = errorClasses(minified)
    expect(classes.map(([name]) => name).sort()).toEqual(errorClasses(source as unknown as Record<string, unknown>).map(([name]) => name).sort())
    for (const [exported, cls] of classes) {
      // The root takes a code first; every subclass starts with the message.
      const error = exported === 'OutpostError' ? new cls('INTERNAL', 'message') : new cls('message')
      expect(error.name, exported).toBe(exported)
      expect(String(error), exported).toBe(`${exported}: message`)
    }
    const deserialize = minified['deserializeError'] as (serialized: { code: string; message: string }) => Error
    expect(deserialize({ code: 'QUOTA_EXCEEDED', message: 'full' }).name).toBe('QuotaExceededError')
    expect(deserialize({ code: 'INVALID_PREDICATE', message: 'bad' }).name).toBe('PredicateError')
  })
})
