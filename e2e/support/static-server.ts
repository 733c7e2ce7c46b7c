/**
 * A tiny static file server for the built demo, run as its own process by the suite's
 * global setup: `node --import tsx static-server.ts <root> [port]`. It listens on
 * 127.0.0.1 (port 0 = a free port) and prints one JSON line `{"msg":"listening","port":N}`.
 *
 * Why not `vite preview`: it cannot report a port it picked itself, and the suite needs
 * exact control of caching (the service worker must be fetched fresh, like a real deploy).
 */
import { createReadStream, statSync } from 'node:fs'
import { createServer } from 'node:http'
import { extname, join, normalize, resolve, sep } from 'node:path'

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
}

const root = resolve(process.argv[2] ?? '.')
const port = Number(process.argv[3] ?? '0')

/** The file a URL path names inside `root`, or undefined when it escapes it or does not exist. */
function fileFor(pathname: string): string | undefined {
  const decoded = decodeURIComponent(pathname)
  const relative = normalize(decoded === '/' ? '/index.html' : decoded).replace(/^([/\\])+/, '')
  const file = join(root, relative)
  if (file !== root && !file.startsWith(root + sep)) return undefined
  try {
    return statSync(file).isFile() ? file : undefined
  } catch {
    return undefined // a missing file is a 404, not a crash
  }
}

const server = createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1')
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405).end()
    return
  }
  const file = fileFor(url.pathname)
  if (file === undefined) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
    return
  }
  const immutable = url.pathname.startsWith('/assets/')
  response.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    // Hashed build files never change; the page and the service worker must be revalidated.
    'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  })
  if (request.method === 'HEAD') {
    response.end()
    return
  }
  createReadStream(file).pipe(response)
})

server.listen(port, '127.0.0.1', () => {
  const address = server.address()
  const actual = typeof address === 'object' && address !== null ? address.port : port
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: actual, root })}\n`)
})

const stop = (): void => {
  server.close(() => process.exit(0))
  // Open keep-alive sockets must not hold the process.
  server.closeAllConnections()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
