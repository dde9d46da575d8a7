// Things to look at, made through the REST API (not through the page under test): a model
// uploaded and submitted, an export.
import { readFileSync } from "node:fs";

import { env } from "./env";
import { serverFetch } from "./http";
import { filePath } from "./app";
import { bearer } from "./tokens";

export interface SeededVersion {
  modelId: string;
  version: string;
  name: string;
  sha256: string;
}

async function expectOk(response: Response, what: string): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${String(response.status)} ${text}`);
  return text ? (JSON.parse(text) as unknown) : {};
}

/** POST /api/v1/models as alice: a version Pending Approval. */
export async function uploadModel(name: string, options: { description?: string; metrics?: Record<string, number>; labels?: Record<string, string> } = {}): Promise<SeededVersion> {
  const form = new FormData();
  form.append("name", name);
  if (options.description) form.append("description", options.description);
  if (options.labels) form.append("labels", JSON.stringify(options.labels));
  if (options.metrics) form.append("metrics", JSON.stringify(options.metrics));
  form.append("file", new Blob([readFileSync(filePath("model.onnx"))]), "model.onnx");
  const response = await serverFetch(`${env.gateway}/api/v1/models`, {
    method: "POST",
    headers: { Authorization: `Bearer ${bearer("data_scientist", "alice")}` },
    body: form,
  });
  const body = (await expectOk(response, `upload ${name}`)) as { modelId: string; version: string; sha256: string };
  return { modelId: body.modelId, version: body.version, name, sha256: body.sha256 };
}

/** POST /api/v1/models/{id}/approvals as alice: the version In Review, in bob's queue. */
export async function submitForApproval(version: SeededVersion, comment: string): Promise<string> {
  const response = await serverFetch(`${env.gateway}/api/v1/models/${version.modelId}/approvals`, {
    method: "POST",
    headers: { Authorization: `Bearer ${bearer("data_scientist", "alice")}`, "content-type": "application/json" },
    body: JSON.stringify({ version: version.version, comment }),
  });
  const body = (await expectOk(response, `submit ${version.name}`)) as { approvalId: string };
  return body.approvalId;
}

/** A CSV export of the last hours of an asset as alice (GET history:csv): its export id. */
export async function exportCsv(assetId: string, hours = 6): Promise<string> {
  const end = new Date();
  const start = new Date(end.getTime() - hours * 3_600_000);
  const query = new URLSearchParams({ assetId, startTime: start.toISOString(), endTime: end.toISOString() });
  const response = await serverFetch(`${env.gateway}/api/v1/query/history:csv?${query.toString()}`, {
    headers: { Authorization: `Bearer ${bearer("data_scientist", "alice")}` },
  });
  await response.text();
  if (!response.ok) throw new Error(`export of ${assetId}: HTTP ${String(response.status)}`);
  const id = response.headers.get("x-mlplane-export-id");
  if (!id) throw new Error("the CSV export answered without an x-mlplane-export-id header");
  return id;
}
