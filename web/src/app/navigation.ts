// What each role sees in the navigation. The server decides what each role may do (and
// answers 403 to anything else); the app only leaves out what would be refused.
import { ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER } from "../auth/jwt";

export type NavKey = "data" | "models" | "upload" | "approvals" | "exports";

export interface NavItem {
  key: NavKey;
  to: string;
  label: string;
  roles: readonly string[];
}

// Both roles read history (approvers judging a model's data); failure events are for data
// scientists only, and the asset view shows that quietly. Exports are one's own.
export const NAV_ITEMS: readonly NavItem[] = [
  { key: "data", to: "/data", label: "Data", roles: [ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER] },
  { key: "models", to: "/models", label: "Models", roles: [ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER] },
  { key: "upload", to: "/upload", label: "Upload a model", roles: [ROLE_DATA_SCIENTIST] },
  { key: "approvals", to: "/approvals", label: "Review queue", roles: [ROLE_MODEL_APPROVER] },
  { key: "exports", to: "/exports", label: "My exports", roles: [ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER] },
];

export function navFor(roles: readonly string[]): NavItem[] {
  return NAV_ITEMS.filter((item) => item.roles.some((role) => roles.includes(role)));
}

export function can(roles: readonly string[], role: string): boolean {
  return roles.includes(role);
}

/** The first page after signing in. */
export function homeFor(roles: readonly string[]): string {
  if (!roles.includes(ROLE_DATA_SCIENTIST) && roles.includes(ROLE_MODEL_APPROVER)) return "/approvals";
  return "/models";
}
