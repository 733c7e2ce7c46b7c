/**
 * Requests of the coordination primitives (topics, locks, entry processors) over the
 * relay session: a request goes out with an id from the same sequence as `ops`, and its
 * answer (or an `error` whose `ref` names it) settles it. Requests need a welcomed session
 * (`syncing` or `live`); one made while connecting waits for it, one made offline or in
 * backoff fails at once with `OfflineError`, and every request in flight when the socket
 * drops fails with `OfflineError` (the relay may or may not have acted on it). Requests
 * are never re-sent on another connection or relay: an entry processor that was in
 * flight may or may not have run, and only its caller can decide what to do.
 */
import { OfflineError, TimeoutError, deserializeError, type ClientMessage, type SerializedError, type ServerMessage } from '@outpost/core'
import type { ConnectionState } from '../engine-api'

/** A server message that answers a request by its `id`. */
export type RequestAnswer = Extract<ServerMessage, { type: 'topic-ack' | 'lock-granted' | 'lock-released' | 'lock-status' | 'invoke-result' }>

/** What the channel needs from the connection. */
export interface RequestLink {
  readonly state: ConnectionState
  /** True when a relay URL is configured. */
  readonly hasRelay: boolean
  /** True when a welcomed session can carry requests. */
  readonly sessionOpen: boolean
  /** Sends now; throws `ValueTooLargeError` for a frame over the relay's limit. */
  send(message: ClientMessage): void
  /** The next id of the sequence shared with `ops`. */
  nextId(): number
}

interface PendingRequest {
  readonly resolve: (answer: RequestAnswer) => void
  readonly reject: (error: unknown) => void
  readonly timer: ReturnType<typeof setTimeout>
  /** The request that was sent, so a late `lock-granted` can be released. */
  readonly kind: string
}

/** Requests waiting for a session while the socket connects. */
interface WaitingRequest {
  readonly send: () => void
  readonly fail: (error: unknown) => void
}

/** Requests and their answers; see the module comment. */
export class RequestChannel {
  readonly #link: RequestLink
  /** Coordination requests in flight, by request id. */
  readonly #calls = new Map<number, PendingRequest>()
  /** Requests made while connecting: sent after `welcome`, failed if the attempt fails. */
  readonly #waiting: WaitingRequest[] = []
  /** Request ids whose caller gave up (timeout): a late lock grant for one is released at once. */
  readonly #abandoned = new Map<number, string>()

  constructor(link: RequestLink) {
    this.#link = link
  }

  /**
   * Sends a request built with a fresh request id and resolves with its answer. Rejects
   * with the relay's typed error (`error {ref}`), `OfflineError` when there is no session
   * (or it drops while waiting), or `TimeoutError` after `timeoutMs`.
   */
  request(build: (id: number) => ClientMessage, timeoutMs: number): Promise<RequestAnswer> {
    return new Promise<RequestAnswer>((resolve, reject) => {
      const go = (): void => {
        const id = this.#link.nextId()
        const message = build(id)
        const timer = setTimeout(() => {
          this.#calls.delete(id)
          this.#abandoned.set(id, message.type)
          reject(new TimeoutError(`the relay did not answer ${message.type} within ${timeoutMs} ms; retry when the connection is stable`, { request: message.type, timeoutMs }))
        }, timeoutMs)
        this.#calls.set(id, { resolve, reject, timer, kind: message.type })
        try {
          this.#link.send(message)
        } catch (error) {
          // Too large to send: the caller gets the typed error, the connection is untouched.
          clearTimeout(timer)
          this.#calls.delete(id)
          reject(error)
        }
      }
      if (this.#link.sessionOpen) {
        go()
        return
      }
      const state = this.#link.state
      if (this.#link.hasRelay && (state === 'connecting' || state === 'handshaking')) {
        // Starting up: wait for the session rather than failing a call made a moment too early.
        const timer = setTimeout(() => {
          const at = this.#waiting.indexOf(waiting)
          if (at >= 0) this.#waiting.splice(at, 1)
          reject(new OfflineError(`the relay was not reachable within ${timeoutMs} ms; this needs a connection to the relay`))
        }, timeoutMs)
        const waiting: WaitingRequest = {
          send: () => {
            clearTimeout(timer)
            go()
          },
          fail: (error) => {
            clearTimeout(timer)
            reject(error)
          },
        }
        this.#waiting.push(waiting)
        return
      }
      reject(new OfflineError(this.#link.hasRelay ? `the client is offline (${state}); locks and entry processors need a connection to the relay` : 'this client has no relay URL; topics to other devices, locks and entry processors need one', { state }))
    })
  }

  /** A session is up: requests that waited for it go now. */
  sessionUp(): void {
    for (const waiting of this.#waiting.splice(0)) waiting.send()
  }

  /** An answer arrived: settles its request (a late lock grant nobody waits for is handed back). */
  answer(message: RequestAnswer): void {
    const call = this.#calls.get(message.id)
    if (call === undefined) {
      // The caller timed out before the grant arrived: nobody will use this lease, so hand it back now.
      if (message.type === 'lock-granted' && this.#abandoned.get(message.id) === 'lock-acquire') {
        this.#link.send({ type: 'lock-release', id: this.#link.nextId(), name: message.name, token: message.token })
      }
      this.#abandoned.delete(message.id)
      return
    }
    this.#calls.delete(message.id)
    clearTimeout(call.timer)
    call.resolve(message)
  }

  /**
   * An `error` whose `ref` may name a request: rejects it with the typed error. True when
   * it belonged to a request (in flight or abandoned), false when it is someone else's.
   */
  refused(ref: number, error: SerializedError): boolean {
    const call = this.#calls.get(ref)
    if (call !== undefined) {
      this.#calls.delete(ref)
      clearTimeout(call.timer)
      call.reject(deserializeError(error))
      return true
    }
    return this.#abandoned.delete(ref)
  }

  /** The socket dropped: every request in flight fails (the relay may or may not have acted on it). */
  failInFlight(reason: string): void {
    const error = new OfflineError(`the connection to the relay was lost (${reason}) before it answered; the relay may or may not have acted on the request`)
    for (const [id, call] of this.#calls) {
      clearTimeout(call.timer)
      this.#calls.delete(id)
      call.reject(error)
    }
    this.#abandoned.clear()
  }

  /** The connection cannot get a session now (`state`): requests waiting for one fail. */
  failWaiting(state: ConnectionState): void {
    const waiting = this.#waiting.splice(0)
    const error = new OfflineError(`the relay is not reachable (${state}); this needs a connection to the relay`, { state })
    for (const w of waiting) w.fail(error)
  }
}
