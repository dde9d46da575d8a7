// The SDK lines that fetch the same export as the asset view (mlplane_client/client.py:
// Client.export_history(asset, start, end, tags=None, resolution=None) → HistoryExport with
// .frame and .manifest). Times in UTC ISO 8601; resolution in seconds, omitted for raw
// samples; tags omitted when all of the asset's tags are wanted.

export interface ExportQuery {
  assetId: string;
  /** UTC RFC 3339. */
  startTime: string;
  /** UTC RFC 3339. */
  endTime: string;
  /** Tag names; empty: all of the asset's tags. */
  tags: readonly string[];
  /** Bucket width in seconds; null: raw samples. */
  resolutionSeconds: number | null;
}

/** A Python string literal (asset ids and tag names are plain ASCII, but be safe anyway). */
export function pyString(value: string): string {
  return JSON.stringify(value);
}

/** `2026-12-04T09:00:00.000Z` → `2026-12-04T09:00:00Z` (UTC, no milliseconds when whole). */
function utc(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().replace(".000Z", "Z");
}

export function pythonSnippet(query: ExportQuery): string {
  const args = [pyString(query.assetId), pyString(utc(query.startTime)), pyString(utc(query.endTime))];
  if (query.tags.length > 0) args.push(`tags=[${query.tags.map(pyString).join(", ")}]`);
  if (query.resolutionSeconds !== null) args.push(`resolution=${Math.round(query.resolutionSeconds)}`);
  return [
    "from mlplane_client import Client",
    "c = Client.from_env()  # MLPLANE_URL and MLPLANE_TOKEN (mlplane token --role data_scientist)",
    `ex = c.export_history(${args.join(", ")})`,
    "ex.frame  # a pandas DataFrame; ex.manifest.export_id is what a model version cites as lineage",
  ].join("\n");
}
