import { Button, Group, SimpleGrid, Stack, Text, Tooltip } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { notifications } from "@mantine/notifications";
import { IconArchive, IconDownload, IconSend } from "@tabler/icons-react";
import { useState } from "react";
import { useParams } from "react-router";

import {
  useArchiveModelVersionMutation,
  useCreateModelDownloadLinkMutation,
  useGetModelVersionQuery,
  useSubmitForApprovalMutation,
} from "../../api/api";
import { downloadByLink } from "../../api/download";
import { type ApiError, asApiError } from "../../api/errors";
import { useAppSelector } from "../../app/hooks";
import { can } from "../../app/navigation";
import { selectRoles } from "../../auth/authSlice";
import { ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER } from "../../auth/jwt";
import { Bytes } from "../../components/Bytes";
import { CommentDialog } from "../../components/CommentDialog";
import { CopyValue } from "../../components/CopyValue";
import { ErrorAlert } from "../../components/ErrorAlert";
import { int64 } from "../../components/format";
import { PageLoader } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { Truncated } from "../../components/Truncated";
import type { ModelVersionJson } from "../../gen/mlplane/v1/model_registry_pb";
import { Breadcrumbs } from "./Breadcrumbs";
import { Fact } from "./ModelPage";
import { formatOpsets } from "./signature";
import { ValidationSection } from "./ValidationReport";
import { AuditEntries, Labels, Lineage, MetricsTable, Section, SignatureTables, StatusHistory } from "./VersionSections";

function SubmitButton({ version }: { version: ModelVersionJson }) {
  const [opened, { open, close }] = useDisclosure(false);
  const [submit, state] = useSubmitForApprovalMutation();
  const [error, setError] = useState<ApiError | null>(null);
  const modelId = version.modelId ?? "";
  const number = version.version ?? "";
  const pending = version.status === "PENDING_APPROVAL";
  const button = (
    <Button leftSection={<IconSend size={16} aria-hidden />} onClick={open} disabled={!pending}>
      Submit for approval
    </Button>
  );
  return (
    <>
      {pending ? (
        button
      ) : (
        <Tooltip label="Only a version pending approval can be submitted" withArrow>
          <span>{button}</span>
        </Tooltip>
      )}
      <CommentDialog
        opened={opened}
        onClose={() => {
          setError(null);
          close();
        }}
        title={`Submit ${version.name ?? ""} v${number} for approval`}
        kind="submit"
        draftKey={`submit.${modelId}.${number}`}
        intro={
          <Text size="sm">
            An approver will review this version. Until they decide, it is <b>In Review</b> and cannot be submitted again.
          </Text>
        }
        label="Note for the reviewer"
        description="Optional: what changed, how it was evaluated."
        confirmLabel="Submit for approval"
        busy={state.isLoading}
        error={error ? <ErrorAlert error={error} context="submit" /> : null}
        onConfirm={async (comment) => {
          setError(null);
          const result = await submit({ modelId, version: number, comment });
          if (result.error) {
            setError(asApiError(result.error));
            return false;
          }
          close();
          notifications.show({
            color: "blue",
            title: "Submitted for approval",
            message: `${version.name ?? "The model"} v${number} is In Review.`,
          });
          return true;
        }}
      />
    </>
  );
}

function ArchiveButton({ version }: { version: ModelVersionJson }) {
  const [opened, { open, close }] = useDisclosure(false);
  const [archive, state] = useArchiveModelVersionMutation();
  const [error, setError] = useState<ApiError | null>(null);
  const modelId = version.modelId ?? "";
  const number = version.version ?? "";
  if (version.status === "ARCHIVED") return null;
  return (
    <>
      <Button variant="default" leftSection={<IconArchive size={16} aria-hidden />} onClick={open}>
        Archive
      </Button>
      <CommentDialog
        opened={opened}
        onClose={() => {
          setError(null);
          close();
        }}
        title={`Archive ${version.name ?? ""} v${number}`}
        kind="archive"
        draftKey={`archive.${modelId}.${number}`}
        intro={<Text size="sm">An archived version can no longer be submitted; an open review of it is cancelled.</Text>}
        label="Why it is archived"
        confirmLabel="Archive"
        confirmColor="red"
        busy={state.isLoading}
        error={error ? <ErrorAlert error={error} context="archive" /> : null}
        onConfirm={async (comment) => {
          setError(null);
          const result = await archive({ modelId, version: number, comment });
          if (result.error) {
            setError(asApiError(result.error));
            return false;
          }
          close();
          return true;
        }}
      />
    </>
  );
}

function DownloadButton({ version }: { version: ModelVersionJson }) {
  // A signed link, then an anchor download: the browser streams the file to disk itself, so
  // a 1 GiB model never passes through the page's memory.
  const [createLink, link] = useCreateModelDownloadLinkMutation();
  const [error, setError] = useState<ApiError | null>(null);
  const modelId = version.modelId ?? "";
  const number = version.version ?? "";
  const start = async () => {
    setError(null);
    const result = await createLink({ modelId, version: number });
    if (result.error) {
      setError(asApiError(result.error));
      return;
    }
    downloadByLink(result.data.url ?? "", `${version.name ?? "model"}-v${number}.onnx`);
  };
  return (
    <Stack gap={4} align="flex-end">
      <Tooltip
        label="Saved straight to disk; check it with sha256sum against the SHA-256 shown here"
        withArrow
        multiline
        w={280}
      >
        <Button
          variant="default"
          leftSection={<IconDownload size={16} aria-hidden />}
          loading={link.isLoading}
          onClick={() => void start()}
        >
          Download
        </Button>
      </Tooltip>
      {error && <ErrorAlert error={error} context="download" />}
    </Stack>
  );
}

export default function VersionPage() {
  const { modelId = "", version = "" } = useParams();
  const roles = useAppSelector(selectRoles);
  const query = useGetModelVersionQuery({ modelId, version });
  const v = query.data;

  if (query.error) {
    return (
      <>
        <Breadcrumbs items={[{ label: "Model", to: `/models/${modelId}` }, { label: `v${version}` }]} />
        <PageHeader title={`Version ${version}`} docTitle={`Version ${version}`} />
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      </>
    );
  }
  if (!v) return <PageLoader />;
  const name = v.name ?? modelId;
  const signature = v.signature;

  return (
    <>
      <Breadcrumbs items={[{ label: name, to: `/models/${modelId}` }, { label: `v${version}` }]} />
      <PageHeader
        title={
          <Group gap="sm" wrap="wrap" component="span">
            <span style={{ overflowWrap: "anywhere" }}>
              {name} <Text span inherit c="dimmed">v{version}</Text>
            </span>
            <StatusBadge status={v.status} size="lg" />
          </Group>
        }
        docTitle={`${name} v${version}`}
        actions={
          <>
            {can(roles, ROLE_DATA_SCIENTIST) && <SubmitButton version={v} />}
            {can(roles, ROLE_MODEL_APPROVER) && <ArchiveButton version={v} />}
            <DownloadButton version={v} />
          </>
        }
      >
        {v.description && (
          <Text c="dimmed" size="sm" style={{ overflowWrap: "anywhere", whiteSpace: "pre-line" }}>
            {v.description}
          </Text>
        )}
      </PageHeader>

      <Stack gap="lg">
        <Section title="Overview">
          <SimpleGrid cols={{ base: 2, md: 4 }} spacing="md" verticalSpacing="md">
            <Fact label="Uploaded by">
              <Truncated size="sm">{v.createdBy ?? "—"}</Truncated>
            </Fact>
            <Fact label="Uploaded">
              <Time value={v.createTime} />
            </Fact>
            <Fact label="Last change">
              <Time value={v.updateTime} />
            </Fact>
            <Fact label="Size">
              <Bytes value={int64(v.sizeBytes)} />
            </Fact>
            <Fact label="Producer">
              <Truncated size="sm">
                {[signature?.producerName, signature?.producerVersion].filter(Boolean).join(" ") || "—"}
              </Truncated>
            </Fact>
            <Fact label="ONNX IR version">{signature?.irVersion ?? "—"}</Fact>
            <Fact label="Opsets">
              <Truncated size="sm">{formatOpsets(signature?.opsetImports)}</Truncated>
            </Fact>
          </SimpleGrid>
          <Stack gap={2} mt="md">
            <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
              SHA-256
            </Text>
            <CopyValue value={v.sha256 ?? ""} label="SHA-256" />
          </Stack>
        </Section>

        <ValidationSection version={v} />

        <SimpleGrid cols={{ base: 1, md: 2 }} spacing="lg">
          <Section title="Metrics">
            <MetricsTable metrics={v.metrics} />
          </Section>
          <Stack gap="lg">
            <Section title="Labels">
              <Labels labels={v.labels} />
            </Section>
            <Section title="Training data (lineage)">
              <Lineage exportIds={v.trainingExportIds} />
            </Section>
          </Stack>
        </SimpleGrid>

        <Section title="ONNX signature">
          <SignatureTables version={v} />
        </Section>

        <Section title="Status history">
          <StatusHistory version={v} />
        </Section>

        <AuditEntries modelId={modelId} version={version} />
      </Stack>
    </>
  );
}
