// The contract's checks for the app's small forms (comments of submit, approve, reject,
// archive), lazily loaded with protovalidate.
import {
  ApproveModelVersionRequestSchema,
  ArchiveModelVersionRequestSchema,
  RejectModelVersionRequestSchema,
  SubmitForApprovalRequestSchema,
} from "../gen/mlplane/v1/model_registry_pb";
import { checkMessage } from "./validate";

// A syntactically valid id stands in for the one in the URL: only the comment is the user's.
const SOME_UUID = "00000000-0000-4000-8000-000000000000";

export type CommentKind = "submit" | "approve" | "reject" | "archive";

/** The contract's message for a comment, or null when it is fine. */
export function commentProblem(kind: CommentKind, comment: string): string | null {
  const messages =
    kind === "submit"
      ? checkMessage(SubmitForApprovalRequestSchema, { modelId: SOME_UUID, comment })
      : kind === "approve"
        ? checkMessage(ApproveModelVersionRequestSchema, { approvalId: SOME_UUID, comment })
        : kind === "reject"
          ? checkMessage(RejectModelVersionRequestSchema, { approvalId: SOME_UUID, comment })
          : checkMessage(ArchiveModelVersionRequestSchema, { modelId: SOME_UUID, version: 1n, comment });
  return messages.find((m) => m.field === "comment")?.message ?? null;
}
