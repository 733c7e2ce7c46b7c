// Size budgets (`npm run size`, part of `npm test`): what an app ships for Outpost,
// measured on the built packages with esbuild, every dependency included, minified, gzip.
// The worker bundle is what the SharedWorker (or the leader tab's dedicated worker) loads;
// the client entry includes the in-page fallback engine, which is why it is the larger.
// Budgets sit about 8% above the measured size, so growth is a decision, not an accident:
// raised from 150/140 kB when the reliability work (frame sizes, rejections, clock
// re-stamping, reconciliation in core) and the same-tab overlay landed (152.0 / 140.2 kB).
// Wire v2 (packed change batches and reconciliation lists, checked as they are read) adds
// about 4.3 kB to each (measured with and without it on the same tree).
// Full-text search adds about 9.5 kB to each (169.4 / 157.1 kB measured): MiniSearch is 5.9 kB
// of it, loaded with a dynamic import() only when a map declares search (an app's Vite build
// puts it in its own chunk; esbuild here inlines it, so it is counted), and the index, live
// searches, spec validation and error classes the rest. Raised from 165/152 kB.
// The committed-write race fixes in the committer and sync host (writes still queued or being
// committed count as pending) and the relay-shared frame codec (scanFrame as a class,
// measureTotal / packListBySize) took the client entry to 175.05 kB (+0.45 kB) and the worker
// to 161.28 kB. Raised from 175/162 kB to keep a little room, not to invite growth.
// The third wave of #11 took them to 178.22 / 164.46 kB (+3.2 kB each): relay changes are
// checked once where they arrive (core received-change.ts, a walk the store no longer does),
// one writer per database (a Web Lock and its typed error), a cold start's first query read
// from stored pages, and queries compiled once. Raised from 178/164 kB to 182/168 kB.

/** esbuild bundles as ESM, as apps do (`new URL(..., import.meta.url)` needs import.meta). */
const esm = (config) => ({ ...config, format: 'esm' })

export default [
  {
    name: '@outpost/client: createClient and everything it imports',
    path: 'packages/client/dist/index.js',
    import: '{ createClient }',
    gzip: true,
    modifyEsbuildConfig: esm,
    limit: '182 kB',
  },
  {
    // The in-page inspector panel; it only reads `client.inspector`, so it carries no engine.
    name: '@outpost/client/devtools: the inspector panel',
    path: 'packages/client/dist/devtools/index.js',
    import: '{ mountInspector }',
    gzip: true,
    modifyEsbuildConfig: esm,
    limit: '4 kB',
  },
  {
    name: 'SharedWorker bundle: the engine with its dependencies',
    path: 'packages/client/dist/worker-entry.js',
    gzip: true,
    modifyEsbuildConfig: esm,
    limit: '168 kB',
  },
]
