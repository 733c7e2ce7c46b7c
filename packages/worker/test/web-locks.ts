/**
 * A minimal, real Web Locks manager for Node tests (Node 20 has no `navigator.locks`):
 * exclusive and shared modes, FIFO grants, `ifAvailable` and `signal` as the spec has them
 * (https://w3c.github.io/web-locks/). Several "contexts" (workers, tabs) share one manager,
 * as one origin shares the browser's. Not a mock: it grants and queues locks.
 */
interface Request {
  readonly name: string
  readonly mode: LockMode
  readonly callback: (lock: Lock | null) => unknown
  readonly resolve: (value: unknown) => void
  readonly reject: (reason: unknown) => void
  readonly signal: AbortSignal | undefined
}

/** One origin's lock manager. */
export class TestLockManager {
  readonly #held = new Map<string, { mode: LockMode; count: number }>()
  readonly #queue: Request[] = []

  request(name: string, ...args: [LockGrantedCallback<unknown>] | [LockOptions, LockGrantedCallback<unknown>]): Promise<unknown> {
    const [options, callback] = args.length === 1 ? [{} as LockOptions, args[0]] : args
    const mode: LockMode = options.mode ?? 'exclusive'
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted === true) {
        reject(new DOMException('The lock request was aborted', 'AbortError'))
        return
      }
      const request: Request = { name, mode, callback: callback as (lock: Lock | null) => unknown, resolve, reject, signal: options.signal }
      if (this.#grantable(request)) {
        this.#grant(request)
        return
      }
      if (options.ifAvailable === true) {
        this.#run(request, null)
        return
      }
      this.#queue.push(request)
      options.signal?.addEventListener('abort', () => {
        const at = this.#queue.indexOf(request)
        if (at < 0) return
        this.#queue.splice(at, 1)
        reject(new DOMException('The lock request was aborted', 'AbortError'))
      })
    })
  }

  /** What is held and waiting, by name (as `navigator.locks.query()`, without client ids). */
  async query(): Promise<{ held: { name: string; mode: LockMode }[]; pending: { name: string; mode: LockMode }[] }> {
    return {
      held: [...this.#held].map(([name, { mode }]) => ({ name, mode })),
      pending: this.#queue.map(({ name, mode }) => ({ name, mode })),
    }
  }

  #grantable(request: Request): boolean {
    // FIFO: nothing jumps ahead of an earlier request for the same name.
    if (this.#queue.some((queued) => queued.name === request.name && queued !== request)) return false
    const held = this.#held.get(request.name)
    return held === undefined || (held.mode === 'shared' && request.mode === 'shared')
  }

  #grant(request: Request): void {
    const held = this.#held.get(request.name)
    this.#held.set(request.name, { mode: request.mode, count: (held?.count ?? 0) + 1 })
    this.#run(request, { name: request.name, mode: request.mode })
  }

  #run(request: Request, lock: Lock | null): void {
    let result: Promise<unknown>
    try {
      result = Promise.resolve(request.callback(lock))
    } catch (error) {
      result = Promise.reject(error)
    }
    void result.then(request.resolve, request.reject).finally(() => {
      if (lock !== null) this.#release(lock.name)
    })
  }

  #release(name: string): void {
    const held = this.#held.get(name) as { mode: LockMode; count: number }
    if (held.count > 1) held.count--
    else this.#held.delete(name)
    // Grant from the front of the queue while the front can be granted.
    for (;;) {
      const next = this.#queue.find((queued) => queued.name === name)
      if (next === undefined) return
      const current = this.#held.get(name)
      if (current !== undefined && !(current.mode === 'shared' && next.mode === 'shared')) return
      this.#queue.splice(this.#queue.indexOf(next), 1)
      this.#grant(next)
    }
  }

  /** This manager as the DOM type. */
  get asLockManager(): LockManager {
    return this as unknown as LockManager
  }
}
