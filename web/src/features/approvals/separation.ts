import type { ApprovalJson } from "../../gen/mlplane/v1/model_registry_pb";

/**
 * Why the signed-in approver may not decide this request (separation of duties: the
 * uploader or submitter of a version never decides it), or null. The server refuses anyway;
 * the app says so before the click.
 */
export function whyNotDecide(approval: ApprovalJson, subject: string): string | null {
  if (!subject) return null;
  const uploaded = approval.modelVersion?.createdBy === subject;
  const submitted = approval.submittedBy === subject;
  if (uploaded && submitted) return "You uploaded and submitted this version, so another approver must decide it.";
  if (uploaded) return "You uploaded this version, so another approver must decide it.";
  if (submitted) return "You submitted this version, so another approver must decide it.";
  return null;
}
