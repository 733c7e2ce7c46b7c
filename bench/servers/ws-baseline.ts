/**
 * The raw `ws` baseline server, run as its own process (so its RSS is its own): echoes
 * every message to its sender, except messages whose first byte is 1, which it sends to
 * every other client (the raw fan-out). Prints `{"port": n}` once listening on 127.0.0.1.
 */
import { WebSocketServer, type RawData } from 'ws'

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
wss.on('connection', (socket) => {
  socket.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = data as Buffer
    if (bytes[0] === 1) {
      for (const client of wss.clients) if (client !== socket) client.send(bytes, { binary: isBinary })
    } else socket.send(bytes, { binary: isBinary })
  })
})
wss.on('listening', () => {
  const address = wss.address()
  if (address !== null && typeof address !== 'string') console.log(JSON.stringify({ port: address.port }))
})
