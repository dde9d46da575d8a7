// Dev sign-in links and bearer tokens, minted the way a user mints them:
// `mlplane token --role R --subject S [--ttl N] [--url]` in the dev stack's state folder.
import { execFileSync } from "node:child_process";

import { env } from "./env";

export type Role = "data_scientist" | "model_approver";

export interface MintOptions {
  /** Lifetime in seconds; negative mints an expired token. Default: the CLI's hour. */
  ttl?: number;
}

function mint(role: Role, subject: string, url: boolean, options: MintOptions = {}): string {
  const args = ["token", "--role", role, "--subject", subject, "--tenant", "demo"];
  if (options.ttl !== undefined) args.push(`--ttl=${String(options.ttl)}`);
  if (url) args.push("--url");
  const childEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("MLPLANE_")) childEnv[key] = value;
  }
  childEnv.MLPLANE_STATE_DIR = env.stateDir;
  return execFileSync(env.mlplane, args, { env: childEnv, encoding: "utf8", timeout: 30_000 }).trim();
}

/** The URL that signs a browser tab in: `http://<gateway>/#token=<JWT>`. */
export function signInUrl(role: Role, subject: string, options: MintOptions = {}): string {
  const url = mint(role, subject, true, options);
  if (!url.startsWith(`${env.gateway}/#token=`)) {
    throw new Error(`mlplane token --url printed ${url.slice(0, 60)}…, not a link to ${env.gateway}`);
  }
  return url;
}

const bearers = new Map<string, string>();

/** A bearer token for checks through the API (cached: tokens last an hour). */
export function bearer(role: Role, subject: string): string {
  const key = `${role}/${subject}`;
  let token = bearers.get(key);
  if (!token) {
    token = mint(role, subject, false);
    bearers.set(key, token);
  }
  return token;
}
