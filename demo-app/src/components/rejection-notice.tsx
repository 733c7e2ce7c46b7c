/** The dismissible notice that a change was refused by the relay (see `../rejections.ts`). */
import type { RejectionNotice as Notice } from '../rejections'

/** Props of {@link RejectionNotice}. */
export interface RejectionNoticeProps {
  readonly notice: Notice
  /** The person read it. */
  readonly onDismiss: () => void
}

/** "Your change to “…” was not saved: …" with a Dismiss button. */
export function RejectionNotice({ notice, onDismiss }: RejectionNoticeProps) {
  return (
    <div className="notice notice-rejected" role="alert" data-testid="rejection-notice" data-code={notice.code} data-unseen={notice.unseen}>
      <span className="notice-text" title={notice.detail} data-testid="rejection-text">
        {notice.text} It was undone on this device.
      </span>
      <button type="button" className="notice-dismiss" data-testid="rejection-dismiss" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  )
}
