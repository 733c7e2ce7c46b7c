/**
 * Records of the demo's shape (a task: title, notes, status, assignee, priority, createdAt)
 * with varied, seeded text, for the search benchmarks: a title of 3–8 words and notes of
 * 0–40 words drawn from a vocabulary of 6,000 made-up words with a skewed (Zipf-like)
 * frequency, as app text has. Same seed → same records.
 */

/** A task record as the demo stores it. */
export interface TaskRecord {
  readonly [field: string]: string | number
  readonly title: string
  readonly notes: string
  readonly status: string
  readonly assignee: string
  readonly priority: number
  readonly createdAt: number
}

/** mulberry32: a small seeded PRNG returning [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'shi', 'po', 'ven', 'dar', 'el', 'or', 'bin', 'ces', 'tu', 'gra', 'fel', 'mon', 'pri', 'sal']
const STATUSES = ['todo', 'doing', 'done']
const PEOPLE = ['Ana', 'Ben', 'Chen', 'Dee', 'Eli', 'Fay', 'Gus', 'Hana', '']

/** The vocabulary: `size` distinct words of 2–4 syllables. */
function vocabulary(random: () => number, size: number): string[] {
  const words = new Set<string>()
  while (words.size < size) {
    const n = 2 + Math.floor(random() * 3)
    let word = ''
    for (let i = 0; i < n; i++) word += SYLLABLES[Math.floor(random() * SYLLABLES.length)]
    words.add(word)
  }
  return [...words]
}

/** Makes `count` task records keyed `t0000000…`, from `seed`. */
export function makeTasks(count: number, seed: number): { key: string; value: TaskRecord }[] {
  const random = seededRandom(seed)
  const words = vocabulary(random, 6_000)
  // Zipf-like: index ~ size * u^3 favours the first words.
  const word = (): string => words[Math.floor(words.length * random() ** 3)] as string
  const phrase = (min: number, max: number): string => {
    const n = min + Math.floor(random() * (max - min + 1))
    const out: string[] = []
    for (let i = 0; i < n; i++) out.push(word())
    return out.join(' ')
  }
  const tasks: { key: string; value: TaskRecord }[] = []
  for (let i = 0; i < count; i++) {
    tasks.push({
      key: `t${String(i).padStart(7, '0')}`,
      value: {
        title: phrase(3, 8),
        notes: random() < 0.3 ? '' : phrase(5, 40),
        status: STATUSES[i % 3] as string,
        assignee: PEOPLE[i % PEOPLE.length] as string,
        priority: 1 + (i % 4),
        createdAt: 1_700_000_000_000 + i * 1_000,
      },
    })
  }
  return tasks
}

/** A few query words that occur in the data (common, mid and rare), for query timings. */
export function queryWords(tasks: readonly { value: TaskRecord }[], count: number, seed: number): string[] {
  const random = seededRandom(seed)
  const out: string[] = []
  while (out.length < count) {
    const task = tasks[Math.floor(random() * tasks.length)] as { value: TaskRecord }
    const words = task.value.title.split(' ')
    out.push(words[Math.floor(random() * words.length)] as string)
  }
  return out
}
