/** A round badge with a person's initials, coloured by their name so it is the same everywhere. */

/** Props of {@link Avatar}. */
export interface AvatarProps {
  readonly name: string
  readonly size?: 'sm' | 'md'
}

const HUES = [12, 38, 148, 174, 200, 226, 262, 292, 330]

/** The same name always gets the same hue, on every device. */
function hueOf(name: string): number {
  // FNV-1a: short names that differ in one letter still land on different hues.
  let hash = 2166136261
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 16777619) >>> 0
  return HUES[hash % HUES.length] ?? 226
}

function initialsOf(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean)
  if (parts.length === 0) return '?'
  const first = parts[0]?.[0] ?? ''
  const last = parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? '') : ''
  return (first + last).toUpperCase()
}

/** A person's avatar; an empty name shows a neutral placeholder. */
export function Avatar({ name, size = 'md' }: AvatarProps) {
  const style = name.trim() === '' ? undefined : { background: `hsl(${hueOf(name)} 65% 92%)`, color: `hsl(${hueOf(name)} 55% 32%)` }
  return (
    <span className={`avatar avatar-${size}`} style={style} title={name || 'Unassigned'} aria-hidden="true">
      {initialsOf(name)}
    </span>
  )
}
