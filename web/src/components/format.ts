// Numbers, sizes and times for people: local time with UTC on hover, sizes in binary units
// with the exact byte count on hover.

const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB"] as const;

const exactFormat = new Intl.NumberFormat("en-US");
const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "—";
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit] ?? ""}`;
}

export function formatExactBytes(bytes: number): string {
  return `${exactFormat.format(bytes)} bytes`;
}

export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "—";
  return `${(bytesPerSecond / 1_000_000).toFixed(1)} MB/s`;
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e9)) return value.toExponential(4);
  return numberFormat.format(value);
}

// Making an Intl.DateTimeFormat costs far more than using one (a list of 1,000 times spent
// most of its rendering making them): one per style, made on first use.
const localFormats = new Map<boolean, Intl.DateTimeFormat>();

function localFormat(withSeconds: boolean): Intl.DateTimeFormat {
  let format = localFormats.get(withSeconds);
  if (!format) {
    format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: withSeconds ? "medium" : "short" });
    localFormats.set(withSeconds, format);
  }
  return format;
}

export function formatLocal(iso: string, withSeconds = false): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return localFormat(withSeconds).format(date);
}

/** `2026-12-05 09:24:43 UTC` */
export function formatUtc(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** int64 from proto JSON (a string, absent when 0). */
export function int64(value: string | undefined): number {
  const n = Number(value ?? "0");
  return Number.isFinite(n) ? n : 0;
}
