// The upload form: its draft (kept in sessionStorage), the contract's rules applied to it as
// the user types, and the server's field violations put back on the same fields.
import type { UploadFields } from "../../api/upload";
import { byField, checkMessage, type FieldMessage } from "../../contract/validate";
import { UploadModelMetadataSchema } from "../../gen/mlplane/v1/model_registry_pb";

export interface Row {
  key: string;
  value: string;
}

export interface UploadDraft {
  name: string;
  description: string;
  labels: Row[];
  metrics: Row[];
  exportIds: string[];
  /** The evaluation set's label column (absent from drafts kept before it existed). */
  labelColumn?: string;
}

export const EMPTY_DRAFT: UploadDraft = { name: "", description: "", labels: [], metrics: [], exportIds: [], labelColumn: "" };

export function isBlankDraft(draft: UploadDraft): boolean {
  return (
    !draft.name &&
    !draft.description &&
    draft.labels.every((r) => !r.key && !r.value) &&
    draft.metrics.every((r) => !r.key && !r.value) &&
    draft.exportIds.length === 0 &&
    !draft.labelColumn
  );
}

export interface RowProblems {
  key?: string;
  value?: string;
}

/** Messages by the form's own places. */
export interface FormProblems {
  name?: string;
  description?: string;
  labels?: string;
  metrics?: string;
  exportIds?: string;
  labelColumn?: string;
  /** Only the server's (the app checks the file itself before sending: fileChecks.ts). */
  evaluationSet?: string;
  labelRows: RowProblems[];
  metricRows: RowProblems[];
  /** Anything the form has no place for (shown with the form's error). */
  other: string[];
}

export function noProblems(draft: UploadDraft): FormProblems {
  return {
    labelRows: draft.labels.map(() => ({})),
    metricRows: draft.metrics.map(() => ({})),
    other: [],
  };
}

export function hasProblems(problems: FormProblems): boolean {
  return Boolean(
    problems.name ||
      problems.description ||
      problems.labels ||
      problems.metrics ||
      problems.exportIds ||
      problems.labelColumn ||
      problems.evaluationSet ||
      problems.other.length ||
      problems.labelRows.some((r) => r.key || r.value) ||
      problems.metricRows.some((r) => r.key || r.value),
  );
}

/** `labels["team"]`: how the contract and the server name one entry of a map. */
export function mapEntryPath(map: "labels" | "metrics", key: string): string {
  return `${map}[${JSON.stringify(key.slice(0, 64))}]`;
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(Infinity|NaN)$/;

function parseMetric(text: string): number | null {
  const trimmed = text.trim();
  return NUMBER.test(trimmed) ? Number(trimmed) : null;
}

/**
 * Places field messages (the contract's, or the server's BadRequest) on the form. Fields
 * are REST JSON paths: `name`, `labels["team"]`, `metrics`, `trainingExportIds[0]`.
 */
export function placeMessages(draft: UploadDraft, messages: readonly FieldMessage[], into: FormProblems): FormProblems {
  const out: FormProblems = {
    ...into,
    labelRows: into.labelRows.map((r) => ({ ...r })),
    metricRows: into.metricRows.map((r) => ({ ...r })),
    other: [...into.other],
  };
  for (const m of messages) {
    const field = m.field.replace(/^metadata\./, "");
    if (field === "name" || field === "description") {
      out[field] ??= m.message;
      continue;
    }
    if (field === "labels" || field === "metrics") {
      out[field] ??= m.message;
      continue;
    }
    if (field === "evaluationLabelColumn") {
      out.labelColumn ??= m.message;
      continue;
    }
    if (field === "evaluationSet") {
      out.evaluationSet ??= m.message;
      continue;
    }
    if (field === "trainingExportIds" || field.startsWith("trainingExportIds[")) {
      out.exportIds ??= m.message;
      continue;
    }
    const entry = /^(labels|metrics)\[/.exec(field);
    if (entry) {
      const map = entry[1] as "labels" | "metrics";
      const rows = map === "labels" ? draft.labels : draft.metrics;
      const places = map === "labels" ? out.labelRows : out.metricRows;
      const index = rows.findIndex((r) => r.key.trim() && mapEntryPath(map, r.key.trim()) === field);
      const place = index >= 0 ? places[index] : undefined;
      if (place) {
        const forKey = m.forKey || m.message.startsWith(`${field} key `);
        if (forKey) place.key ??= m.message;
        else place.value ??= m.message;
        continue;
      }
      out[map] ??= m.message;
      continue;
    }
    out.other.push(m.message);
  }
  return out;
}

/** The form checked by the contract: the fields to send, or what is wrong and where. */
export function checkDraft(draft: UploadDraft): { fields: UploadFields; problems: FormProblems } {
  const problems = noProblems(draft);
  const labels: Record<string, string> = {};
  draft.labels.forEach((row, i) => {
    const key = row.key.trim();
    if (!key && !row.value) return;
    const place = problems.labelRows[i];
    if (key in labels && place) {
      place.key = `${mapEntryPath("labels", key)} appears twice`;
      return;
    }
    labels[key] = row.value;
  });
  const metrics: Record<string, number> = {};
  draft.metrics.forEach((row, i) => {
    const key = row.key.trim();
    if (!key && !row.value.trim()) return;
    const place = problems.metricRows[i];
    if (key in metrics && place) {
      place.key = `${mapEntryPath("metrics", key)} appears twice`;
      return;
    }
    const value = parseMetric(row.value);
    if (value === null) {
      if (place) place.value = `${mapEntryPath("metrics", key)} must be a number, e.g. 0.91`;
      metrics[key] = 0; // still check the name by the contract
      return;
    }
    metrics[key] = value;
  });
  const fields: UploadFields = {
    name: draft.name,
    description: draft.description,
    labels,
    metrics,
    trainingExportIds: draft.exportIds.map((id) => id.trim()).filter(Boolean),
  };
  const labelColumn = (draft.labelColumn ?? "").trim();
  if (labelColumn) fields.evaluationLabelColumn = labelColumn;
  const messages = checkMessage(UploadModelMetadataSchema, fields);
  return { fields, problems: placeMessages(draft, messages, problems) };
}

export { byField };
