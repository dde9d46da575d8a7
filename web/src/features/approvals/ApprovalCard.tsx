import { Anchor, Badge, Button, Group, Paper, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { notifications } from "@mantine/notifications";
import { IconCheck, IconInfoCircle, IconX } from "@tabler/icons-react";
import { useState } from "react";
import { Link } from "react-router";

import {
  useApproveModelVersionMutation,
  useListModelVersionsQuery,
  useRejectModelVersionMutation,
  useValidationReport,
} from "../../api/api";
import { type ApiError, asApiError } from "../../api/errors";
import { CommentDialog } from "../../components/CommentDialog";
import { CopyValue } from "../../components/CopyValue";
import { ErrorAlert } from "../../components/ErrorAlert";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import type { ApprovalJson, ModelVersionJson, TensorSpecJson } from "../../gen/mlplane/v1/model_registry_pb";
import { Fact } from "../models/ModelPage";
import { formatShape } from "../models/signature";
import { whyNotApprove } from "../models/validation";
import { Lineage, MetricsTable } from "../models/VersionSections";
import { whyNotDecide } from "./separation";
import { ValidationSummary } from "./ValidationSummary";

/** The model's approved version to compare against: the newest APPROVED one, if any. */
function useApprovedVersion(modelId: string, version: string): ModelVersionJson | undefined {
  const versions = useListModelVersionsQuery({ modelId, pageSize: 100 }, { skip: !modelId });
  return versions.data?.modelVersions?.find((v) => v.status === "APPROVED" && v.version !== version);
}

function SignatureSummary({ version }: { version: ModelVersionJson | undefined }) {
  const describe = (tensors: TensorSpecJson[] | undefined) =>
    (tensors ?? []).map((t) => `${t.name ?? "?"}: ${t.elementType ?? "?"}${formatShape(t.shape)}`).join(", ") || "—";
  return (
    <Stack gap={2}>
      <Text size="sm" ff="monospace" lineClamp={2} title={describe(version?.signature?.inputs)}>
        in {describe(version?.signature?.inputs)}
      </Text>
      <Text size="sm" ff="monospace" lineClamp={2} title={describe(version?.signature?.outputs)}>
        out {describe(version?.signature?.outputs)}
      </Text>
    </Stack>
  );
}

export function ApprovalCard({
  approval,
  subject,
  onConflict,
}: {
  approval: ApprovalJson;
  subject: string;
  /** A 409: decided by someone else meanwhile. The page says so (this card leaves the queue). */
  onConflict: (error: ApiError, title: string) => void;
}) {
  const approvalId = approval.approvalId ?? "";
  const modelId = approval.modelId ?? "";
  const version = approval.version ?? "";
  const mv = approval.modelVersion;
  const approved = useApprovedVersion(modelId, version);
  const blocked = whyNotDecide(approval, subject);
  // The report (polled while it runs) is fresher than the queue's copy of the version.
  const report = useValidationReport({ modelId, version }, { skip: !modelId || !version }).data;
  const validationState = report?.state ?? mv?.validationState;
  const notValidated = whyNotApprove(validationState, report);
  const [decision, setDecision] = useState<"approve" | "reject" | null>(null);
  const [opened, { open, close }] = useDisclosure(false);
  const [approve, approving] = useApproveModelVersionMutation();
  const [reject, rejecting] = useRejectModelVersionMutation();
  const [error, setError] = useState<ApiError | null>(null);
  const title = `${approval.modelName ?? modelId} v${version}`;
  const headingId = `approval-${approvalId}`;
  const versionUrl = `/models/${modelId}/versions/${version}`;
  const approveDescribedBy =
    [blocked ? `${headingId}-blocked` : null, notValidated ? `${headingId}-validation` : null].filter(Boolean).join(" ") ||
    undefined;

  const start = (kind: "approve" | "reject") => {
    setDecision(kind);
    setError(null);
    open();
  };

  return (
    <Paper withBorder radius="md" p="md" component="article" aria-labelledby={headingId}>
      <Stack gap="md">
        <Group justify="space-between" align="flex-start" wrap="wrap" gap="sm">
          <Stack gap={2} style={{ minWidth: 0, flex: "1 1 16rem" }}>
            <Title order={2} size="h4" id={headingId} style={{ minWidth: 0 }}>
              <Anchor component={Link} to={versionUrl} inherit truncate="end" display="block" title={title}>
                {title}
              </Anchor>
            </Title>
            <Text size="sm" c="dimmed" component="div">
              Submitted by <b>{approval.submittedBy || "—"}</b> · <Time value={approval.submitTime} />
              {mv?.createdBy && mv.createdBy !== approval.submittedBy ? (
                <>
                  {" "}
                  · uploaded by <b>{mv.createdBy}</b>
                </>
              ) : null}
            </Text>
          </Stack>
          <StatusBadge status={approval.state} />
        </Group>

        {approval.submitComment ? (
          <Text size="sm" style={{ whiteSpace: "pre-line", overflowWrap: "anywhere" }} lineClamp={6}>
            “{approval.submitComment}”
          </Text>
        ) : (
          <Text size="sm" c="dimmed">
            No comment given.
          </Text>
        )}

        <ValidationSummary
          state={validationState}
          report={report}
          hasEvaluationSet={Boolean(mv?.hasEvaluationSet)}
          reportUrl={versionUrl}
          title={title}
        />

        <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
          <Stack gap="xs" style={{ minWidth: 0 }}>
            <Fact label="Metrics">
              <MetricsTable
                metrics={mv?.metrics}
                {...(approved ? { compareTo: approved.metrics, compareLabel: `Approved v${approved.version ?? ""}` } : {})}
              />
              {!approved && (
                <Text size="xs" c="dimmed" mt={4}>
                  No approved version of this model to compare with.
                </Text>
              )}
            </Fact>
          </Stack>
          <Stack gap="sm" style={{ minWidth: 0 }}>
            <Fact label="Signature">
              <SignatureSummary version={mv} />
            </Fact>
            <Fact label="Training data (lineage)">
              <Lineage exportIds={mv?.trainingExportIds} />
            </Fact>
            <Fact label="SHA-256">
              <CopyValue value={approval.sha256 ?? mv?.sha256 ?? ""} label="SHA-256" />
            </Fact>
          </Stack>
        </SimpleGrid>

        <Group justify="space-between" wrap="wrap" gap="sm">
          <Stack gap={4} style={{ minWidth: 0, flex: "1 1 16rem" }}>
            {blocked && (
              <Group gap={6} wrap="nowrap" id={`${headingId}-blocked`}>
                <IconInfoCircle size={16} aria-hidden style={{ flexShrink: 0 }} />
                <Text size="sm">{blocked}</Text>
              </Group>
            )}
            {notValidated && (
              <Group gap={6} wrap="nowrap" align="flex-start" id={`${headingId}-validation`}>
                <IconInfoCircle size={16} aria-hidden style={{ flexShrink: 0, marginTop: 2 }} />
                <Text size="sm" style={{ overflowWrap: "anywhere" }}>
                  {notValidated}
                  {blocked ? "" : " You can still reject it."}
                </Text>
              </Group>
            )}
          </Stack>
          <Group gap="sm">
            <Button
              color="red"
              variant="light"
              leftSection={<IconX size={16} aria-hidden />}
              disabled={Boolean(blocked) || approval.state !== "OPEN"}
              aria-describedby={blocked ? `${headingId}-blocked` : undefined}
              onClick={() => {
                start("reject");
              }}
            >
              Reject
            </Button>
            <Button
              color="teal.9"
              leftSection={<IconCheck size={16} aria-hidden />}
              disabled={Boolean(blocked) || Boolean(notValidated) || approval.state !== "OPEN"}
              aria-describedby={approveDescribedBy}
              onClick={() => {
                start("approve");
              }}
            >
              Approve
            </Button>
          </Group>
        </Group>
      </Stack>

      <CommentDialog
        opened={opened && decision !== null}
        onClose={() => {
          setError(null);
          close();
        }}
        title={decision === "reject" ? `Reject ${title}` : `Approve ${title}`}
        kind={decision ?? "approve"}
        draftKey={`${decision ?? "approve"}.${approvalId}`}
        intro={
          <Group gap={6}>
            <Badge variant="light" color="gray" c="dark.7" tt="none">
              SHA-256 {(approval.sha256 ?? "").slice(0, 12)}…
            </Badge>
            <Text size="sm">
              {decision === "reject"
                ? "The version becomes Rejected; say why, for its author."
                : "The version becomes Approved and may be deployed."}
            </Text>
          </Group>
        }
        label={decision === "reject" ? "Why it is rejected" : "Comment"}
        {...(decision === "reject" ? { description: "Required: the author reads it." } : { description: "Optional." })}
        confirmLabel={decision === "reject" ? "Reject" : "Approve"}
        confirmColor={decision === "reject" ? "red" : "teal.9"}
        busy={approving.isLoading || rejecting.isLoading}
        error={error ? <ErrorAlert error={error} context="decide" /> : null}
        onConfirm={async (comment) => {
          setError(null);
          const args = { approvalId, modelId, comment };
          const result = decision === "reject" ? await reject(args) : await approve(args);
          if (result.error) {
            const e = asApiError(result.error);
            if (e.httpStatus === 409) {
              // Decided by someone else meanwhile: the page says so; the queue refreshes.
              onConflict(e, title);
              close();
              return true;
            }
            setError(e);
            return false;
          }
          close();
          notifications.show({
            color: decision === "reject" ? "red" : "teal",
            title: decision === "reject" ? "Rejected" : "Approved",
            message: `${title} is ${decision === "reject" ? "Rejected" : "Approved"}.`,
          });
          return true;
        }}
      />
    </Paper>
  );
}
