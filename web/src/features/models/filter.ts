// ListModels' filter (a subset of AIP-160): `name:"pump"` (the name contains it, any case),
// `name = "pump-a"` (exact), `status = PENDING_APPROVAL` (of the newest version), joined
// with AND.
import type { ModelVersion_StatusJson } from "../../gen/mlplane/v1/model_registry_pb";

export type VersionStatus = Exclude<ModelVersion_StatusJson, "STATUS_UNSPECIFIED">;

export const VERSION_STATUSES: readonly VersionStatus[] = [
  "PENDING_APPROVAL",
  "IN_REVIEW",
  "APPROVED",
  "REJECTED",
  "ARCHIVED",
];

export function isVersionStatus(value: string | null): value is VersionStatus {
  return value !== null && (VERSION_STATUSES as readonly string[]).includes(value);
}

export function buildModelFilter({
  search,
  status,
  exact = false,
}: {
  search: string;
  status: VersionStatus | null;
  exact?: boolean;
}): string {
  const clauses: string[] = [];
  // A quoted value cannot hold `"` or `\` (names never do); drop them rather than fail.
  const text = search.trim().replace(/["\\]/g, "");
  if (text) clauses.push(exact ? `name = "${text}"` : `name:"${text}"`);
  if (status) clauses.push(`status = ${status}`);
  return clauses.join(" AND ");
}
