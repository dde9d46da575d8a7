// The REST JSON answer of ExportHistory (`GET /api/v1/query/history`): Envoy writes the
// server stream as one JSON array of messages, in the order header, data batches, manifest.
// With a resolution the batches are `aggregates` ({bucketTime, tag, avg, min, max, count});
// without one, `samples`. This turns them into one series per tag for the charts.
import type {
  AggregateJson,
  ExportHistoryResponseJson,
  ExportJson,
  SampleJson,
  TagJson,
} from "../gen/mlplane/v1/query_service_pb";

export interface Bucket {
  /** Start of the bucket, epoch milliseconds. */
  t: number;
  avg: number | null;
  min: number | null;
  max: number | null;
  count: number;
}

export interface TagSeries {
  tag: string;
  unit: string;
  description: string;
  /** Ordered by time. */
  buckets: Bucket[];
}

export interface HistoryChart {
  exportId: string;
  assetId: string;
  series: TagSeries[];
  /** Data rows received (tag × bucket). */
  rowCount: number;
  /** The export's manifest (the stream's last message), when it arrived. */
  manifest: ExportJson | null;
}

type JsonDouble = number | "NaN" | "Infinity" | "-Infinity" | undefined;

/** A proto JSON double: absent is 0 (the default), the special values are not plotted. */
export function double(value: JsonDouble): number | null {
  if (value === undefined) return 0;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function parseHistory(raw: unknown): HistoryChart {
  const messages: unknown[] = Array.isArray(raw) ? raw : [raw];
  const chart: HistoryChart = { exportId: "", assetId: "", series: [], rowCount: 0, manifest: null };
  const byTag = new Map<string, TagSeries>();
  const seriesFor = (tag: string, info?: TagJson): TagSeries => {
    let series = byTag.get(tag);
    if (!series) {
      series = { tag, unit: info?.unit ?? "", description: info?.description ?? "", buckets: [] };
      byTag.set(tag, series);
      chart.series.push(series);
    }
    return series;
  };
  const addAggregate = (a: AggregateJson) => {
    const t = a.bucketTime ? Date.parse(a.bucketTime) : Number.NaN;
    if (Number.isNaN(t)) return;
    seriesFor(a.tag ?? "").buckets.push({
      t,
      avg: double(a.avg),
      min: double(a.min),
      max: double(a.max),
      count: Number(a.count ?? "0"),
    });
    chart.rowCount += 1;
  };
  const addSample = (s: SampleJson) => {
    const t = s.time ? Date.parse(s.time) : Number.NaN;
    if (Number.isNaN(t)) return;
    const value = double(s.value);
    seriesFor(s.tag ?? "").buckets.push({ t, avg: value, min: value, max: value, count: 1 });
    chart.rowCount += 1;
  };
  for (const item of messages) {
    if (!isRecord(item)) continue;
    const message = item as ExportHistoryResponseJson;
    if (message.header) {
      chart.exportId = message.header.exportId ?? "";
      chart.assetId = message.header.assetId ?? "";
      // The header's tags come first, in column order, with their units.
      for (const tag of message.header.tags ?? []) seriesFor(tag.name ?? "", tag);
    } else if (message.aggregates) {
      for (const a of message.aggregates.aggregates ?? []) addAggregate(a);
    } else if (message.samples) {
      for (const s of message.samples.samples ?? []) addSample(s);
    } else if (message.manifest) {
      chart.manifest = message.manifest;
    }
  }
  for (const series of chart.series) series.buckets.sort((a, b) => a.t - b.t);
  return chart;
}
