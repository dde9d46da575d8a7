// The asset view's time range: a preset (the last 24 h, 7 d, 30 d or 90 d of the asset's
// history) or a custom start and end picked in the user's zone. Times travel as UTC
// RFC 3339 strings (what the API takes); the pickers show local wall-clock time.

export const PRESETS = ["24h", "7d", "30d", "90d"] as const;
export type Preset = (typeof PRESETS)[number];
export type RangeChoice = Preset | "custom";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const PRESET_MS: Record<Preset, number> = {
  "24h": DAY_MS,
  "7d": 7 * DAY_MS,
  "30d": 30 * DAY_MS,
  "90d": 90 * DAY_MS,
};

export const PRESET_LABELS: Record<RangeChoice, string> = {
  "24h": "24 h",
  "7d": "7 d",
  "30d": "30 d",
  "90d": "90 d",
  custom: "Custom",
};

/** The server's longest range (MLPLANE_QUERY_MAX_WINDOW_DAYS, default 366 days). */
export const MAX_RANGE_DAYS = 366;

export function isPreset(value: string | null): value is Preset {
  return value !== null && (PRESETS as readonly string[]).includes(value);
}

export interface TimeRange {
  /** Inclusive, UTC RFC 3339. */
  start: string;
  /** Exclusive, UTC RFC 3339. */
  end: string;
}

/** UTC RFC 3339 without milliseconds: `2026-12-05T09:00:00Z`. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * Where presets end: just after the asset's newest sample (so "24 h" shows the last day of
 * data even for an asset that stopped reporting), on a whole minute, and never in the future
 * beyond that minute. Without samples, now.
 */
export function presetAnchor(lastTime: string | undefined, nowMs: number): number {
  const last = lastTime ? Date.parse(lastTime) : Number.NaN;
  const base = Number.isNaN(last) ? nowMs : Math.min(last, nowMs);
  return Math.floor(base / 60_000) * 60_000 + 60_000;
}

export function presetRange(preset: Preset, anchorMs: number): TimeRange {
  return { start: isoSeconds(anchorMs - PRESET_MS[preset]), end: isoSeconds(anchorMs) };
}

export function rangeSeconds(range: TimeRange): number {
  return (Date.parse(range.end) - Date.parse(range.start)) / 1000;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** UTC RFC 3339 → the value of an `<input type="datetime-local">` in the user's zone. */
export function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An `<input type="datetime-local">` value (the user's zone) → UTC RFC 3339, or null. */
export function fromLocalInput(value: string): string | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!match) return null;
  const [, y, mo, d, h, mi, s] = match;
  const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? "0"));
  return Number.isNaN(date.getTime()) ? null : isoSeconds(date.getTime());
}

export interface RangeErrors {
  start?: string;
  end?: string;
}

/** What is wrong with a custom range, said beside the field it concerns. */
export function checkRange(start: string | null, end: string | null, maxDays = MAX_RANGE_DAYS): RangeErrors {
  const errors: RangeErrors = {};
  if (!start) errors.start = "Pick a start date and time";
  if (!end) errors.end = "Pick an end date and time";
  if (start && end) {
    const span = Date.parse(end) - Date.parse(start);
    if (span <= 0) errors.end = "The end must be after the start";
    else if (span < 60_000) errors.end = "The range must be at least a minute long";
    else if (span > maxDays * DAY_MS) errors.end = `The range can be at most ${maxDays} days long`;
  }
  return errors;
}

/** "24 hours", "7 days", "2 days 6 hours", "45 minutes". */
export function spanWords(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const mins = minutes % 60;
  const part = (n: number, word: string) => (n === 1 ? `1 ${word}` : `${n} ${word}s`);
  if (days >= 2 && hours === 0) return part(days, "day");
  if (days >= 1) return [part(days, "day"), hours ? part(hours, "hour") : ""].filter(Boolean).join(" ");
  if (hours >= 1) return [part(hours, "hour"), mins ? part(mins, "minute") : ""].filter(Boolean).join(" ");
  return part(mins, "minute");
}
