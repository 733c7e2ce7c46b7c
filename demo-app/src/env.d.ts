/// <reference types="vite/client" />

/** Build-time settings (see `config.ts`). */
interface ImportMetaEnv {
  /** Relay WebSocket URL baked into the build; `?relay=` still wins. */
  readonly VITE_OUTPOST_URL?: string
  /** Relay port on the page's own host when no URL is given (default 8787). */
  readonly VITE_OUTPOST_PORT?: string
}
