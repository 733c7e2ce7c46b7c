/** Where the demo syncs to and which local database it opens, from the page's URL. */
import { describe, expect, it } from 'vitest'
import { DEFAULT_DB_NAME, readConfig } from '../src/config'

const at = (search: string, hostname = '127.0.0.1', protocol = 'http:') => readConfig({ search, hostname, protocol })

describe('readConfig', () => {
  it('defaults to the relay on the page host and the demo database', () => {
    expect(at('')).toEqual({ relayUrl: 'ws://127.0.0.1:8787', dbName: DEFAULT_DB_NAME, meOverride: undefined })
    expect(at('', 'laptop.local').relayUrl).toBe('ws://laptop.local:8787')
  })

  it('uses wss on https pages and brackets IPv6 hosts', () => {
    expect(at('', 'demo.example', 'https:').relayUrl).toBe('wss://demo.example:8787')
    expect(at('', '::1').relayUrl).toBe('ws://[::1]:8787')
  })

  it('takes ?relay=, ?db= and ?me= over the defaults, ignoring blank values', () => {
    expect(at('?relay=ws://127.0.0.1:9999&db=device-2&me=Grace')).toEqual({ relayUrl: 'ws://127.0.0.1:9999', dbName: 'device-2', meOverride: 'Grace' })
    expect(at('?relay=&db=%20&me=')).toEqual({ relayUrl: 'ws://127.0.0.1:8787', dbName: DEFAULT_DB_NAME, meOverride: undefined })
  })
})
