/**
 * The demo board as a person uses it: type a title and press "Add task", click into a
 * field and type, pick from a select, read the status bar. Every helper goes through the
 * UI (the `data-testid`s listed in demo-app/README.md); nothing calls the SDK directly.
 */
import { expect, type Locator, type Page } from '@playwright/test'

/** A text field edited in place. */
export type TextField = 'title' | 'assignee' | 'notes'

/** The connection states the status bar shows (`data-state`). */
export type ConnectionState = 'offline' | 'connecting' | 'handshaking' | 'syncing' | 'live' | 'backing-off' | 'auth-expired'

/** Helpers over one tab showing the board. */
export class Board {
  constructor(readonly page: Page) {}

  /** Every task card. */
  get items(): Locator {
    return this.page.getByTestId('task-item')
  }

  /** The card of the task with this id. */
  task(id: string): Locator {
    return this.page.locator(`[data-testid="task-item"][data-task-id="${id}"]`)
  }

  /** The card whose current title is `title`. */
  taskTitled(title: string): Locator {
    return this.page.locator(`[data-testid="task-item"][data-title="${cssString(title)}"]`)
  }

  /** Types a title, presses "Add task" and returns the new task's id once its card shows. */
  async addTask(title: string): Promise<string> {
    await this.page.getByTestId('new-task-title').fill(title)
    await this.page.getByTestId('new-task-submit').click()
    const card = this.taskTitled(title)
    await expect(card).toHaveCount(1)
    const id = await card.getAttribute('data-task-id')
    if (id === null) throw new Error(`the card of "${title}" has no data-task-id`)
    return id
  }

  /**
   * Clicks into a text field of a task, replaces its text and leaves the field, which
   * saves it. Leaving means focus goes nowhere else: a focused field keeps showing the
   * person's draft instead of remote changes, so tabbing into the next one would hide them.
   */
  async editText(id: string, field: TextField, value: string): Promise<void> {
    const input = this.task(id).getByTestId(`task-${field}`)
    await input.click()
    await input.fill(value)
    await input.blur()
    await expect(input).not.toBeFocused()
  }

  /** Picks a status from the task's status select. */
  async setStatus(id: string, status: 'todo' | 'doing' | 'done'): Promise<void> {
    await this.task(id).getByTestId('task-status').selectOption(status)
  }

  /** Picks a priority (4 urgent … 1 low). */
  async setPriority(id: string, priority: 1 | 2 | 3 | 4): Promise<void> {
    await this.task(id).getByTestId('task-priority').selectOption(String(priority))
  }

  /** Clicks the task's like button. */
  async like(id: string): Promise<void> {
    await this.task(id).getByTestId('task-like').click()
  }

  /** Waits until a text field of the task shows `value`. */
  async expectText(id: string, field: TextField, value: string): Promise<void> {
    await expect(this.task(id).getByTestId(`task-${field}`)).toHaveValue(value)
  }

  /** Waits until the task's status select shows `status`. */
  async expectStatus(id: string, status: string): Promise<void> {
    await expect(this.task(id).getByTestId('task-status')).toHaveValue(status)
  }

  /** The status bar's connection item. */
  get connection(): Locator {
    return this.page.getByTestId('status-connection')
  }

  /**
   * Waits until the status bar shows this connection state. The default wait is longer
   * than other expectations: a first sync competes for a small, shared CI machine.
   */
  async expectConnection(state: ConnectionState, timeout = 60_000): Promise<void> {
    await expect(this.connection).toHaveAttribute('data-state', state, { timeout })
  }

  /** Waits until the status bar says nothing is waiting for the relay (every write acknowledged). */
  async expectAllSynced(timeout = 60_000): Promise<void> {
    await expect(this.page.getByTestId('status-pending')).toHaveAttribute('data-count', '0', { timeout })
  }

  /** The number of writes the status bar says are not on the relay yet. */
  async pendingCount(): Promise<number> {
    return Number(await this.page.getByTestId('status-pending').getAttribute('data-count'))
  }

  /** The runtime mode the status bar shows (`shared-worker`, `leader-tab`, `in-page`). */
  get mode(): Locator {
    return this.page.getByTestId('status-mode')
  }

  /** Clicks the status bar's "Work offline" / "Go online" switch. */
  async toggleOffline(): Promise<void> {
    await this.page.getByTestId('offline-toggle').click()
  }
}

/** Escapes a string for use inside a double-quoted CSS attribute selector. */
function cssString(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
}
