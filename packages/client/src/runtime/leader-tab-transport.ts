/**
 * Leader-tab mode, for browsers without SharedWorker: every tab asks for one Web Lock;
 * the tab holding it is the leader, runs the engine in a dedicated worker and serves the
 * other tabs (followers) over BroadcastChannel (see `tab-protocol.ts`). When the leader
 * tab closes, the browser hands the lock to the next tab at once; it starts its own
 * worker (which resumes from IndexedDB), announces itself, and followers re-send their
 * unanswered calls to it and re-make their subscriptions.
 *
 *   follower ──call──▶ BroadcastChannel ──▶ leader tab ──comlink──▶ dedicated worker (engine)
 *            ◀─answer/event──────────────◀─            ◀─callbacks──
 */
import { WorkerUnavailableError, deserializeError, serializeError } from '@outpost/core'
import type { EngineOptions } from '@outpost/worker'
// The method table only: the engine itself loads lazily (in-page mode) or in a worker.
import { answerHandle, methodSpec } from '@outpost/worker/methods'
import { ComlinkTransport, type EngineEndpoint } from '../engine/comlink-transport'
import { ResetSignal, reportListenerError, type EngineMethod, type EngineTransport } from '../engine/transport'
import { leaderLockName, tabChannelName } from './names'
import { UNSUBSCRIBE_METHODS, UNSUBSCRIBE_OF, WRITE_ARITY, isCallbackRef, isTabMessage, type CallbackRef, type TabMessage } from './tab-protocol'

/** Options of {@link LeaderTabTransport}. */
export interface LeaderTabOptions {
  /** The database name (one leader per origin + name). */
  readonly name: string
  /** Options the leader hands its engine. */
  readonly engineOptions: EngineOptions
  /** Starts the dedicated worker that runs the engine (called when this tab becomes leader). */
  readonly openWorker: () => EngineEndpoint
  /** Web Locks (injected in tests). */
  readonly locks?: LockManager
  /** Random tab id source (injected in tests). */
  readonly randomId?: () => string
}

interface PendingCall {
  readonly method: EngineMethod
  readonly args: readonly unknown[]
  readonly wireArgs: readonly unknown[]
  readonly callbacks: readonly number[]
  readonly resolve: (value: unknown) => void
  readonly reject: (error: unknown) => void
}

/** An engine reached through the leader tab (which may be this one). */
export class LeaderTabTransport implements EngineTransport {
  readonly mode = 'leader-tab' as const
  /** This tab's id on the channel. */
  readonly tabId: string
  readonly #options: LeaderTabOptions
  readonly #channel: BroadcastChannel
  readonly #reset = new ResetSignal()
  readonly #abort = new AbortController()
  readonly #pending = new Map<number, PendingCall>()
  readonly #callbacks = new Map<number, (...args: unknown[]) => void>()
  /** Follower side: `unsubscribeMethod:id` → callback ids, dropped when the subscription ends. */
  readonly #callbacksBySubscription = new Map<string, readonly number[]>()
  /** Leader side: follower tab → its live subscriptions (`unsubscribeMethod` and id). */
  readonly #followerSubscriptions = new Map<string, Map<string, readonly [EngineMethod, unknown]>>()
  #leaderId: string | null = null
  #hadLeader = false
  #local: ComlinkTransport | null = null
  #releaseLock: (() => void) | null = null
  #nextReq = 1
  #nextCallback = 1
  #closed = false
  readonly #onPageHide = (event: PageTransitionEvent): void => {
    if (!event.persisted) this.#leave()
  }

  constructor(options: LeaderTabOptions) {
    this.#options = options
    this.tabId = (options.randomId ?? randomTabId)()
    this.#channel = new BroadcastChannel(tabChannelName(options.name))
    this.#channel.onmessage = (event: MessageEvent) => {
      if (isTabMessage(event.data)) this.#onMessage(event.data)
    }
    const locks = options.locks ?? navigator.locks
    locks.request(leaderLockName(options.name), { signal: this.#abort.signal }, () => this.#lead()).catch(ignoreLockAbort)
    this.#post({ type: 'who-leads', from: this.tabId })
    globalThis.addEventListener?.('pagehide', this.#onPageHide)
  }

  /** True while this tab is the leader. */
  get isLeader(): boolean {
    return this.#local !== null
  }

  call(method: EngineMethod, callArgs: readonly unknown[]): Promise<unknown> {
    let args = callArgs
    if (this.#closed) return Promise.reject(new WorkerUnavailableError('The client is closed; create a new one'))
    if (this.#local) return this.#local.call(method, args)
    if (UNSUBSCRIBE_METHODS.has(method)) {
      const key = `${method}:${String(args[0])}`
      for (const id of this.#callbacksBySubscription.get(key) ?? []) this.#callbacks.delete(id)
      this.#callbacksBySubscription.delete(key)
    }
    const req = this.#nextReq++
    const arity = WRITE_ARITY[method]
    // Writes carry a call id (see WRITE_ARITY), so a re-sent call never applies twice.
    if (arity !== undefined && args.length === arity) args = [...args, `${this.tabId}:${req}`]
    return new Promise((resolve, reject) => {
      const callbacks: number[] = []
      const wireArgs = args.map((arg) => {
        if (typeof arg !== 'function') return arg
        const id = this.#nextCallback++
        this.#callbacks.set(id, arg as (...a: unknown[]) => void)
        callbacks.push(id)
        const ref: CallbackRef = { callback: id, __outpostCallback: true }
        return ref
      })
      this.#pending.set(req, { method, args, wireArgs, callbacks, resolve, reject })
      if (this.#leaderId !== null) this.#send(req)
    })
  }

  onReset(listener: () => void): () => void {
    return this.#reset.add(listener)
  }

  recover(reason: string): void {
    // Only the leader can restart the worker; a follower waits for the leader (or a new one).
    this.#local?.recover(reason)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#leave()
  }

  #leave(): void {
    if (this.#closed) return
    this.#closed = true
    globalThis.removeEventListener?.('pagehide', this.#onPageHide)
    if (this.#local) {
      this.#post({ type: 'abdicate', leader: this.tabId })
      void this.#local.close()
      this.#local = null
      this.#releaseLock?.()
    } else {
      this.#post({ type: 'bye', from: this.tabId })
      this.#abort.abort()
    }
    for (const pending of this.#pending.values()) pending.reject(new WorkerUnavailableError('The client was closed before the engine answered'))
    this.#pending.clear()
    this.#callbacks.clear()
    this.#channel.close()
  }

  /** Runs while this tab holds the lock; the lock is released when the returned promise settles. */
  async #lead(): Promise<void> {
    if (this.#closed) return
    const local = new ComlinkTransport({ mode: 'leader-tab', open: this.#options.openWorker, engineOptions: this.#options.engineOptions })
    local.onReset(() => this.#reset.fire())
    this.#local = local
    const followedBefore = this.#hadLeader
    this.#leaderId = this.tabId
    this.#hadLeader = true
    this.#post({ type: 'leader', leader: this.tabId })
    // Our own calls that were waiting for a leader now go to our own engine.
    const waiting = [...this.#pending.values()]
    this.#pending.clear()
    for (const call of waiting) local.call(call.method, call.args).then(call.resolve, call.reject)
    if (followedBefore) this.#reset.fire()
    await new Promise<void>((resolve) => {
      this.#releaseLock = resolve
    })
  }

  #onMessage(message: TabMessage): void {
    if (this.#closed) return
    switch (message.type) {
      case 'who-leads':
        if (this.#local) this.#post({ type: 'leader', leader: this.tabId })
        return
      case 'leader':
        this.#onLeader(message.leader)
        return
      case 'abdicate':
        if (message.leader === this.#leaderId) this.#leaderId = null
        return
      case 'call':
        if (message.to === this.tabId) this.#serve(message)
        return
      case 'answer':
        if (message.to === this.tabId) this.#onAnswer(message)
        return
      case 'event':
        if (message.to === this.tabId) this.#onEvent(message.callback, message.args)
        return
      case 'bye':
        this.#dropFollower(message.from)
        return
    }
  }

  #onLeader(leader: string): void {
    if (this.#local || leader === this.#leaderId) return
    const followedBefore = this.#hadLeader
    this.#leaderId = leader
    this.#hadLeader = true
    // Calls the old leader never answered go to the new one; writes carry call ids, so none applies twice.
    for (const req of this.#pending.keys()) this.#send(req)
    if (followedBefore) this.#reset.fire()
  }

  #send(req: number): void {
    const pending = this.#pending.get(req)
    if (!pending || this.#leaderId === null) return
    this.#post({ type: 'call', from: this.tabId, to: this.#leaderId, req, method: pending.method, args: pending.wireArgs })
  }

  #onAnswer(message: Extract<TabMessage, { type: 'answer' }>): void {
    const pending = this.#pending.get(message.req)
    if (!pending) return
    this.#pending.delete(message.req)
    if (!message.ok) {
      pending.reject(deserializeError(message.error))
      return
    }
    const unsubscribe = UNSUBSCRIBE_OF[pending.method]
    const id = answerHandle(pending.method, message.value)
    if (unsubscribe && id !== undefined) this.#callbacksBySubscription.set(`${unsubscribe}:${String(id)}`, pending.callbacks)
    pending.resolve(message.value)
  }

  #onEvent(callback: number, args: readonly unknown[]): void {
    const fn = this.#callbacks.get(callback)
    if (!fn) return
    try {
      fn(...args)
    } catch (error) {
      reportListenerError(error)
    }
  }

  /** Leader side: runs a follower's call on our engine and answers it. */
  #serve(message: Extract<TabMessage, { type: 'call' }>): void {
    const local = this.#local
    if (!local) return
    const follower = message.from
    if (methodSpec(message.method).kind === 'provider') {
      // Functions cannot answer across BroadcastChannel; the leader tab's own providers (its `auth` callback) serve every tab.
      this.#post({ type: 'answer', to: follower, req: message.req, ok: true, value: undefined })
      return
    }
    const args = message.args.map((arg) =>
      isCallbackRef(arg)
        ? (...cbArgs: unknown[]) => this.#post({ type: 'event', to: follower, callback: arg.callback, args: cbArgs })
        : arg,
    )
    const unsubscribe = UNSUBSCRIBE_OF[message.method]
    if (UNSUBSCRIBE_METHODS.has(message.method)) {
      this.#followerSubscriptions.get(follower)?.delete(`${message.method}:${String(args[0])}`)
    }
    local.call(message.method, args).then(
      (value) => {
        const id = answerHandle(message.method, value)
        if (unsubscribe && id !== undefined) {
          let subs = this.#followerSubscriptions.get(follower)
          if (!subs) this.#followerSubscriptions.set(follower, (subs = new Map()))
          subs.set(`${unsubscribe}:${String(id)}`, [unsubscribe, id])
        }
        this.#post({ type: 'answer', to: follower, req: message.req, ok: true, value })
      },
      (error: unknown) => this.#post({ type: 'answer', to: follower, req: message.req, ok: false, error: serializeError(error) }),
    )
  }

  #dropFollower(follower: string): void {
    const subs = this.#followerSubscriptions.get(follower)
    this.#followerSubscriptions.delete(follower)
    if (!subs || !this.#local) return
    for (const [method, id] of subs.values()) void this.#local.call(method, [id]).catch(ignoreStopFailure)
  }

  #post(message: TabMessage): void {
    try {
      this.#channel.postMessage(message)
    } catch (error) {
      // A value that cannot be structured-cloned: fail the call it belongs to instead of the channel.
      if (message.type === 'call') this.#pending.get(message.req)?.reject(deserializeError(serializeError(error)))
      else if (message.type === 'answer') {
        this.#channel.postMessage({ type: 'answer', to: message.to, req: message.req, ok: false, error: serializeError(error) } satisfies TabMessage)
      } else reportListenerError(error)
    }
  }
}

function randomTabId(): string {
  return globalThis.crypto.randomUUID()
}

/** `request` rejects with AbortError when a follower closes before it ever led; that is the point of aborting. */
function ignoreLockAbort(_error: unknown): void {}

/** A follower's subscriptions may already be gone with the engine that held them. */
function ignoreStopFailure(_error: unknown): void {}
