/**
 * Outpost Tasks: the board. The list is a live query over local data (instant, offline);
 * what this device replicates is either the whole `tasks` map or, in "My tasks", only a
 * shape of the tasks assigned to the person using it.
 */
import { useCallback, useMemo, useState } from 'react'
import { useClient, useStatus } from '@outpost/client/react'
import type { DemoConfig } from './config'
import { editorsByTask, useBoardPresence, useEditingLock } from './collaboration'
import { Composer } from './components/composer'
import { HowItWorks } from './components/how-it-works'
import { InspectorToggle } from './components/inspector-toggle'
import { PresenceBar } from './components/presence-bar'
import { RejectionNotice } from './components/rejection-notice'
import { SearchBox } from './components/search-box'
import { IdentityPicker } from './components/identity-picker'
import { Segmented } from './components/segmented'
import { StatusBar } from './components/status-bar'
import { TaskItem } from './components/task-item'
import { plural } from './format'
import { useStoredChoice } from './hooks/use-stored-choice'
import { useIdentity } from './identity'
import { describeRejections, useSeenRejections } from './rejections'
import { useReplication } from './replication'
import type { BoardView } from './task-queries'
import { useTaskActions, useTaskRows } from './use-tasks'
import { SORTS, newTask, newTaskId, type EditableField, type SortKey } from './task'

const VIEWS: readonly BoardView[] = ['all', 'mine']
const NO_EDITORS: readonly string[] = []
const SORT_KEYS: readonly SortKey[] = SORTS.map((s) => s.value)

/** Props of {@link App}. */
export interface AppProps {
  readonly config: DemoConfig
}

/** The whole page: header, new-task bar, toolbar, task list and status bar. */
export function App({ config }: AppProps) {
  const params = useMemo(() => new URLSearchParams(window.location.search), [])
  const [me, setMe] = useIdentity(config.dbName, config.meOverride)
  const [storedView, setView] = useStoredChoice(`outpost-demo:view:${config.dbName}`, VIEWS, 'all', params.get('view'))
  const [sort, setSort] = useStoredChoice(`outpost-demo:sort:${config.dbName}`, SORT_KEYS, 'priority', params.get('sort'))
  // "My tasks" needs a name to filter by.
  const view: BoardView = me === '' ? 'all' : storedView

  const replication = useReplication(config.dbName, view, me)
  const { rows, loaded, error: rowsError } = useTaskRows(view === 'mine' ? me : null, sort)
  const status = useStatus()
  const client = useClient()
  const onSetOffline = useCallback(
    (offline: boolean) => {
      client.setOffline(offline).catch(reportOfflineSwitchFailed)
    },
    [client],
  )
  const actions = useTaskActions()
  const { presence, members } = useBoardPresence(me)
  const editing = useEditingLock(presence)
  const editors = useMemo(() => editorsByTask(members), [members])

  const people = useMemo(() => {
    const names = new Set<string>()
    if (me !== '') names.add(me)
    for (const row of rows) if (row.task.assignee !== '') names.add(row.task.assignee)
    return [...names].sort((a, b) => a.localeCompare(b))
  }, [rows, me])

  const [howOpen, setHowOpen] = useState(false)
  const [seenRejections, dismissRejections] = useSeenRejections(config.dbName)
  const rejection = useMemo(() => {
    const titles = new Map(rows.map((row) => [row.id, row.task.title]))
    return describeRejections(status.rejected, seenRejections, (id) => titles.get(id))
  }, [status.rejected, seenRejections, rows])
  const heldLock = useMemo(() => {
    if (editing.held === null) return null
    const row = rows.find((r) => r.id === editing.held?.taskId)
    return { title: row?.task.title ?? '', token: editing.held.token }
  }, [editing.held, rows])

  const onCreate = useCallback((title: string) => actions.create(newTaskId(), newTask(title, me, Date.now())), [actions, me])
  const onEdit = useCallback((id: string, field: EditableField, value: string | number) => actions.edit(id, field, value), [actions])
  const onDelete = useCallback((id: string) => actions.remove(id), [actions])

  const error = actions.error ?? replication.error ?? rowsError

  return (
    <div className="app">
      <header className="topbar">
        <div className="topbar-inner">
          <div className="brand">
            <span className="brand-mark" aria-hidden="true">
              <svg viewBox="0 0 20 20" width="18" height="18">
                <path d="M4.5 10.5l3.5 3.5 7.5-8" fill="none" stroke="currentColor" strokeWidth="2.4" strokeLinecap="round" strokeLinejoin="round" />
              </svg>
            </span>
            <div>
              <h1>Outpost Tasks</h1>
              <p>Works offline · syncs when it can</p>
            </div>
          </div>
          <div className="topbar-right">
            <button
              type="button"
              className="how-toggle"
              data-testid="how-it-works-toggle"
              aria-expanded={howOpen}
              aria-controls="how-it-works"
              onClick={() => setHowOpen((open) => !open)}
            >
              How this works
            </button>
            <InspectorToggle />
            <PresenceBar members={members} />
            <IdentityPicker name={me} onChange={setMe} people={people} />
          </div>
        </div>
      </header>

      <main className="board">
        {howOpen ? <HowItWorks view={view} me={me} taskCount={rows.length} mode={status.mode} lock={heldLock} onClose={() => setHowOpen(false)} /> : null}

        <Composer onCreate={onCreate} />
        <SearchBox />

        <div className="toolbar">
          <Segmented<BoardView>
            label="Which tasks"
            testId="view-toggle"
            value={view}
            onChange={setView}
            options={[
              { value: 'all', label: 'All tasks', testId: 'view-all' },
              {
                value: 'mine',
                label: 'My tasks',
                testId: 'view-mine',
                disabled: me === '',
                ...(me === '' ? { title: 'Enter your name first' } : {}),
              },
            ]}
          />
          <div className="toolbar-group">
            <span className="toolbar-label">Sort by</span>
            <Segmented<SortKey>
              label="Sort by"
              testId="sort-toggle"
              value={sort}
              onChange={setSort}
              options={SORTS.map((s) => ({ value: s.value, label: s.label, testId: `sort-${s.value}` }))}
            />
          </div>
        </div>

        <p className="view-note" data-testid="view-note" data-replication={replication.active ?? 'pending'}>
          {view === 'mine' ? (
            <>
              {plural(rows.length, 'task')} assigned to <strong>{me}</strong>
            </>
          ) : (
            <>{plural(rows.length, 'task')}</>
          )}
        </p>

        {rejection ? <RejectionNotice notice={rejection} onDismiss={() => dismissRejections(status.rejected.count)} /> : null}

        {error ? (
          <p className="notice" role="alert" data-testid="error-notice">
            {error.message}
          </p>
        ) : null}

        {!loaded ? (
          <div className="empty" data-testid="loading-state">
            Opening your tasks…
          </div>
        ) : rows.length === 0 ? (
          <div className="empty" data-testid="empty-state">
            <strong>{view === 'mine' ? 'Nothing assigned to you' : 'No tasks yet'}</strong>
            {view === 'mine' ? 'Tasks assigned to you on any device show up here.' : 'Add one above; it is saved on this device at once.'}
          </div>
        ) : (
          <ul className="task-list" data-testid="task-list" data-count={rows.length}>
            {rows.map((row) => (
              <TaskItem
                key={row.id}
                id={row.id}
                task={row.task}
                mine={me !== '' && row.task.assignee === me}
                me={me}
                onEdit={onEdit}
                onDelete={onDelete}
                lockToken={editing.held?.taskId === row.id ? editing.held.token : null}
                editors={editors.get(row.id) ?? NO_EDITORS}
                onEditStart={editing.begin}
                onEditEnd={editing.end}
              />
            ))}
          </ul>
        )}
      </main>

      <StatusBar status={status} relayUrl={config.relayUrl} dbName={config.dbName} onSetOffline={onSetOffline} />
    </div>
  )
}

/** The switch failing means the engine is unreachable, which the status bar already shows. */
function reportOfflineSwitchFailed(error: unknown): void {
  console.error('Outpost demo: could not switch offline mode', error)
}
