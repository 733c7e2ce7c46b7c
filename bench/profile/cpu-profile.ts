/**
 * A Chrome DevTools Protocol CPU profile (`Profiler.stop`'s `profile`, or a `.cpuprofile`
 * file) and a summary of where its time went, for the scripts in this folder.
 */
export interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
export interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** Self time by function and by file, as percentages of the profile. */
export function summarize(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const byFile = new Map<string, number>()
  const byFn = new Map<string, number>()
  for (const [id, t] of self) {
    const { functionName, url, lineNumber } = (byId.get(id) as ProfileNode).callFrame
    const file = url === '' ? functionName : (url.split('/').pop() ?? url)
    byFile.set(file, (byFile.get(file) ?? 0) + t)
    const fn = `${functionName || '(anonymous)'} ${file}:${lineNumber}`
    byFn.set(fn, (byFn.get(fn) ?? 0) + t)
  }
  const list = (m: Map<string, number>): string => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n')
  return `total ${(total / 1e6).toFixed(2)} s sampled\n-- self time by file --\n${list(byFile)}\n-- self time by function --\n${list(byFn)}`
}
