/**
 * Page splitting of the hash-prefix layout (see `idb-store.ts`): a page that would hold too
 * many entries becomes its 16 children one nibble longer, recursively, and its prefix joins
 * the collection's page directory. Pure: no I/O.
 */
import { hash64, type Value } from '@outpost/core'

/**
 * The pages `entries` (the new content of page `prefix`) must be stored as: itself when
 * small enough (at most `max` entries), else its 16 children (recursively), marking split prefixes in `dir`.
 * Returns `[prefix, entries]` pairs, including the emptied parent (to delete it). `hashOf`
 * is `hash64` (a commit passes its cache: a key's hash then serves its page and every split).
 */
export function splitPage(
  prefix: string,
  entries: Map<string, Value>,
  max: number,
  dir: Set<string>,
  splitCollections: Set<string>,
  collection: string,
  hashOf: (key: string) => string = hash64,
): [string, Map<string, Value>][] {
  if (entries.size <= max || prefix.length >= 15) return [[prefix, entries]]
  dir.add(prefix)
  splitCollections.add(collection)
  const children = new Map<string, Map<string, Value>>()
  for (const [key, value] of entries) {
    const child = hashOf(key).slice(0, prefix.length + 1)
    let page = children.get(child)
    if (page === undefined) {
      page = new Map()
      children.set(child, page)
    }
    page.set(key, value)
  }
  const out: [string, Map<string, Value>][] = [[prefix, new Map()]]
  for (const [child, page] of children) out.push(...splitPage(child, page, max, dir, splitCollections, collection, hashOf))
  return out
}
