// Checks through the REST API, from the test's side: what the server stored (or did not).
import { env } from "./env";
import { serverFetch } from "./http";
import { bearer } from "./tokens";

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

export async function apiGet(path: string, token = bearer("data_scientist", "alice")): Promise<ApiAnswer> {
  const response = await serverFetch(`${env.gateway}/api/v1/${path.replace(/^\//, "")}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}

export interface ModelRow {
  modelId: string;
  name: string;
  latestVersion?: string;
}

/** The tenant's models with exactly this name (`filter=name = "…"`): none, or one. */
export async function modelsNamed(name: string): Promise<ModelRow[]> {
  const answer = await apiGet(`models?filter=${encodeURIComponent(`name = "${name}"`)}`);
  if (answer.status !== 200) throw new Error(`GET /models answered ${String(answer.status)}: ${JSON.stringify(answer.body)}`);
  return (answer.body.models as ModelRow[] | undefined) ?? [];
}

/** What `/config.json` tells the app (no token). */
export async function appConfig(gateway = env.gateway): Promise<{ devSignIn: boolean; maxModelBytes: number; oidc: unknown }> {
  const response = await serverFetch(`${gateway}/config.json`);
  return (await response.json()) as { devSignIn: boolean; maxModelBytes: number; oidc: unknown };
}
