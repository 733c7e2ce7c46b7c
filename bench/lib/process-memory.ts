/**
 * Resident memory of processes, from `/proc` (Linux): one process, and a Chromium instance
 * (the browser process found by its `--user-data-dir`, and every process under it).
 */
import { readFile, readdir } from 'node:fs/promises'

/** VmRSS of `pid` in KiB (NaN when it is gone). */
export async function rssKiB(pid: number): Promise<number> {
  return statusKiB(pid, 'VmRSS')
}

/**
 * RssAnon of `pid` in KiB: resident memory the process allocated (heap, buffers), without
 * file pages it maps (an LMDB store's pages read through its memory map count in VmRSS, but
 * are the kernel's page cache, shared and reclaimable).
 */
export async function rssAnonKiB(pid: number): Promise<number> {
  return statusKiB(pid, 'RssAnon')
}

async function statusKiB(pid: number, field: string): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const match = new RegExp(`${field}:\\s+(\\d+)`).exec(status)
    return match === null ? Number.NaN : Number(match[1])
  } catch {
    return Number.NaN
  }
}

interface Proc {
  readonly pid: number
  readonly ppid: number
  readonly cmdline: string
}

async function processes(): Promise<Proc[]> {
  const out: Proc[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).replaceAll('\u0000', ' ')
      out.push({ pid: Number(name), ppid, cmdline })
    } catch {
      // Exited while being read.
    }
  }
  return out
}

/** The processes of the Chromium running on profile `profile`: its browser process and every descendant. */
export async function chromiumProcesses(profile: string): Promise<{ pid: number; renderer: boolean }[]> {
  const all = await processes()
  const roots = all.filter((p) => p.cmdline.includes(`--user-data-dir=${profile}`) && !p.cmdline.includes('--type='))
  const found = new Map<number, Proc>(roots.map((p) => [p.pid, p]))
  for (let grew = true; grew; ) {
    grew = false
    for (const p of all) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.set(p.pid, p)
        grew = true
      }
    }
  }
  return [...found.values()].map((p) => ({ pid: p.pid, renderer: p.cmdline.includes('--type=renderer') }))
}

/** Samples every `everyMs` the RSS of a Chromium instance: the sum over its processes, and its largest renderer (where a SharedWorker runs). */
export function sampleChromium(profile: string, everyMs = 200): { stop(): { peakSumMiB: number; peakRendererMiB: number } } {
  let peakSum = 0
  let peakRenderer = 0
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    void (async () => {
      const procs = await chromiumProcesses(profile)
      let sum = 0
      for (const p of procs) {
        const kib = await rssKiB(p.pid)
        if (Number.isNaN(kib)) continue
        sum += kib
        if (p.renderer) peakRenderer = Math.max(peakRenderer, kib)
      }
      peakSum = Math.max(peakSum, sum)
    })().finally(() => (busy = false))
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      return { peakSumMiB: peakSum / 1024, peakRendererMiB: peakRenderer / 1024 }
    },
  }
}
