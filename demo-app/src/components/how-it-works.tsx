/**
 * "How this works": the ideas behind the board in plain words, with what this device is
 * doing right now. Developer terms (shape, fencing token, CRDT, SharedWorker) live here,
 * not on the board itself.
 */
import type { BoardView } from '../task-queries'
import { plural } from '../format'

/** Props of {@link HowItWorks}. */
export interface HowItWorksProps {
  readonly view: BoardView
  readonly me: string
  /** Tasks on this device for the current view. */
  readonly taskCount: number
  /** The runtime mode the SDK reports (`shared-worker`, `leader-tab`, `in-page`). */
  readonly mode: string
  /** The editing lock this tab holds: the task's title and the lock's fencing token. */
  readonly lock: { readonly title: string; readonly token: number } | null
  readonly onClose: () => void
}

const MODE_WORDS: Readonly<Record<string, string>> = {
  'shared-worker': 'Here, every tab of this browser shares one background worker (a SharedWorker) that owns the data and the one connection.',
  'leader-tab': 'This browser has no SharedWorker, so one tab was chosen as leader: it runs the engine in a worker and the other tabs talk to it.',
  'in-page': 'This browser offers neither, so this tab runs the engine itself.',
}

/** The panel (shown under the header when the person opens it). */
export function HowItWorks({ view, me, taskCount, mode, lock, onClose }: HowItWorksProps) {
  return (
    <section className="how" id="how-it-works" data-testid="how-it-works" aria-labelledby="how-it-works-title">
      <div className="how-head">
        <h2 id="how-it-works-title">How this works</h2>
        <button type="button" className="how-close" data-testid="how-it-works-close" aria-label="Close “How this works”" onClick={onClose}>
          ×
        </button>
      </div>
      <dl className="how-list">
        <dt>Your work is saved here first</dt>
        <dd>
          Every change is stored in this browser (IndexedDB) the moment you make it, then sent to the sync server (the <em>relay</em>) when there is a
          connection. The bar at the bottom says how many changes are still waiting. Two people who change different fields of one task both keep their
          change.
        </dd>

        <dt>Offline</dt>
        <dd>
          Without a network, or with “Work offline” on, everything keeps working. Changes queue up on this device and sync when it is back online; the
          device remembers “Work offline” until you turn it off.
        </dd>

        <dt>Only what this device needs (shapes)</dt>
        <dd>
          A device can ask the relay for a filtered slice of the data instead of all of it; Outpost calls such a slice a <em>shape</em>. “My tasks” asks only
          for tasks assigned to you, and tasks move in and out as they are reassigned (moving out removes them from this device, not for anyone else).
          <span className="how-now" data-testid="how-replication">
            {view === 'mine' ? (
              <>
                Right now this device copies only tasks assigned to <strong>{me}</strong>: {plural(taskCount, 'task')}.
              </>
            ) : (
              <>Right now this device copies every task: {plural(taskCount, 'task')}.</>
            )}
          </span>
        </dd>

        <dt>Who is editing (locks and fencing tokens)</dt>
        <dd>
          Clicking into a title or notes asks the relay for that task’s lock, so others see “… is editing”. Each time a lock is given out it comes with a
          number, the <em>fencing token</em>, that only ever goes up; a server that receives work tagged with a token can refuse a holder whose lock has
          since passed to someone else. The lock only informs: edits still merge field by field, and offline editing simply goes on.
          <span className="how-now" data-testid="how-lock" data-token={lock?.token ?? ''}>
            {lock === null ? (
              'This tab holds no lock right now.'
            ) : (
              <>
                This tab holds the lock of “{lock.title}” with fencing token <strong>#{lock.token}</strong>.
              </>
            )}
          </span>
        </dd>

        <dt>Likes and CRDTs</dt>
        <dd>
          Data that many devices change at once is kept in <em>CRDTs</em>: structures whose copies always merge to the same result, whatever order changes
          arrive in. A CRDT counter adds up every click from every device, which is right for “how many times” but not for “how many people”. So each task
          keeps the <em>set</em> of people who like it: you can like a task once, clicking again takes it back, and liking it on your phone and laptop while
          offline still counts you once.
        </dd>

        <dt>One engine for all tabs</dt>
        <dd>{MODE_WORDS[mode] ?? 'The engine is starting.'} The status bar names the mode.</dd>

        <dt>When the relay says no</dt>
        <dd>
          The relay checks each change against its rules. If it refuses one for good, this device takes the change back, shows the relay’s version again,
          and tells you in a notice above the list.
        </dd>
      </dl>
    </section>
  )
}
