/** A row of mutually exclusive buttons (a segmented control), used for the view and the sort. */

/** One choice of a {@link Segmented} control. */
export interface SegmentedOption<T extends string> {
  readonly value: T
  readonly label: string
  readonly testId: string
  readonly disabled?: boolean
  readonly title?: string
}

/** Props of {@link Segmented}. */
export interface SegmentedProps<T extends string> {
  readonly label: string
  readonly value: T
  readonly options: readonly SegmentedOption<T>[]
  readonly onChange: (value: T) => void
  readonly testId: string
}

/** Buttons with `aria-pressed`, so both people and tests can see which one is active. */
export function Segmented<T extends string>({ label, value, options, onChange, testId }: SegmentedProps<T>) {
  return (
    <div className="segmented" role="group" aria-label={label} data-testid={testId} data-value={value}>
      {options.map((option) => (
        <button
          key={option.value}
          type="button"
          className="segment"
          data-testid={option.testId}
          aria-pressed={option.value === value}
          disabled={option.disabled}
          title={option.title}
          onClick={() => onChange(option.value)}
        >
          {option.label}
        </button>
      ))}
    </div>
  )
}
