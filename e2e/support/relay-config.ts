/**
 * The configuration of the suite's relay (`--config`): open like the demo's own relay,
 * plus one rule a person can run into from the board, so a spec can provoke a real refusal
 * through the UI. The `tasks` map's row filter refuses any write that would leave a task
 * whose title contains {@link REFUSED_TITLE_WORD} (FORBIDDEN, "outside what you may
 * write"); every other map (likes, counters) is public. Topics and locks have no rules, so
 * they stay open. Without auth every client is `anonymous`, which the relay logs once.
 */

/** A word the relay refuses in task titles (a stand-in for any rule an app's relay enforces). */
export const REFUSED_TITLE_WORD = 'CONFIDENTIAL'

export default {
  rules: {
    maps: {
      tasks: { read: 'public', write: 'public', filter: { not: { contains: ['title', REFUSED_TITLE_WORD] } } },
      '*': { read: 'public', write: 'public' },
    },
  },
}
