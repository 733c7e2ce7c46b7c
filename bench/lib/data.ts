/**
 * The one record shape every system stores: six fields, about 200 bytes as JSON. Shared by
 * the Node seeders and the browser pages so every system moves the same bytes.
 */

/** A benchmark record. */
export interface BenchRecord {
  readonly id: string
  readonly title: string
  readonly group: number
  readonly score: number
  readonly done: boolean
  readonly updatedAt: number
}

/** The key of record `i` (fixed width so keys sort like their index). */
export function keyOf(i: number): string {
  return `r${String(i).padStart(7, '0')}`
}

// A fixed filler so a record's size does not depend on its index.
const FILLER = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad'

/** Record `i` at revision `rev` (a later revision changes the title and score). */
export function makeRecord(i: number, rev = 0): BenchRecord {
  return {
    id: keyOf(i),
    title: `${rev}:${FILLER}`.slice(0, 110),
    group: i % 100,
    score: (i * 7919 + rev) % 100_000,
    done: (i + rev) % 2 === 0,
    updatedAt: 1_700_000_000_000 + i + rev,
  }
}
