/** The panel's stylesheet (inside its shadow root, so it neither leaks out nor in). */
export const PANEL_CSS = `
:host { all: initial; }
.panel, .launcher { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #e6e8eb; }
.panel { position: fixed; top: 0; right: 0; bottom: 0; width: min(480px, 100vw); z-index: 2147483646;
  background: #15181d; border-left: 1px solid #2c323b; box-shadow: -8px 0 24px rgba(0,0,0,.35);
  display: flex; flex-direction: column; }
.panel[hidden] { display: none; }
header { display: flex; align-items: center; gap: 8px; padding: 8px 12px; border-bottom: 1px solid #2c323b; }
h2 { font-size: 13px; margin: 0; flex: 1; }
.read-only { color: #8b95a3; font-size: 11px; }
button { font: inherit; color: inherit; cursor: pointer; }
.close { background: none; border: 0; font-size: 18px; line-height: 1; padding: 0 4px; }
.launcher { position: fixed; right: 12px; bottom: 12px; z-index: 2147483647; background: #15181d;
  border: 1px solid #3b4452; border-radius: 14px; padding: 4px 10px; }
.content { overflow: auto; flex: 1; padding: 4px 12px 16px; }
section { margin-top: 12px; }
h3 { font-size: 12px; margin: 0 0 4px; color: #9ecbff; }
.summary { color: #8b95a3; font-weight: normal; margin-left: 8px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 2px 6px 2px 0; vertical-align: top; border-bottom: 1px solid #232830; overflow-wrap: anywhere; }
th { color: #8b95a3; font-weight: normal; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 12px; margin: 0; }
dt { color: #8b95a3; } dd { margin: 0; overflow-wrap: anywhere; }
.preview { color: #8b95a3; } code { color: #f0c674; }
.empty, .more { color: #8b95a3; margin: 2px 0; }
.error { color: #ff8a80; }
.transitions { margin: 6px 0 0; padding-left: 20px; max-height: 140px; overflow: auto; }
.state { padding: 0 4px; border-radius: 3px; background: #2c323b; }
.state-live, .state-synced { background: #1f4d2b; }
.state-offline, .state-waiting { background: #4d3b1f; }
.state-backing-off, .state-auth-expired { background: #5a2222; }
.presence ul { margin: 2px 0 6px; padding-left: 18px; }
`
