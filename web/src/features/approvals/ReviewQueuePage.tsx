import { Button, Group, Stack, Text } from "@mantine/core";
import { IconChecklist, IconRefresh } from "@tabler/icons-react";

import { useListApprovalsQuery } from "../../api/api";
import { type ApiError, asApiError } from "../../api/errors";
import { useState } from "react";
import { useAppSelector } from "../../app/hooks";
import { selectSubject } from "../../auth/authSlice";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { TableSkeleton } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Pager, usePageTokens } from "../../components/Pager";
import { ApprovalCard } from "./ApprovalCard";

export default function ReviewQueuePage() {
  const subject = useAppSelector(selectSubject);
  const paging = usePageTokens("OPEN");
  const query = useListApprovalsQuery({ state: "OPEN", pageSize: 20, pageToken: paging.pageToken });
  const approvals = query.data?.approvals ?? [];
  const [conflicts, setConflicts] = useState<{ error: ApiError; title: string }[]>([]);

  return (
    <>
      <PageHeader
        title="Review queue"
        docTitle="Review queue"
        actions={
          <Button
            variant="default"
            leftSection={<IconRefresh size={16} aria-hidden />}
            loading={query.isFetching && !query.isLoading}
            onClick={() => void query.refetch()}
          >
            Refresh
          </Button>
        }
      >
        <Text c="dimmed" size="sm">
          Versions waiting for a decision, oldest first. You cannot decide a version you uploaded or submitted.
        </Text>
      </PageHeader>
      {conflicts.length > 0 && (
        <Stack gap="xs" mb="md">
          {conflicts.map(({ error, title }, i) => (
            <ErrorAlert
              key={`${title}-${i}`}
              error={error}
              context="decide"
              title={`${title}: someone else decided this request in the meantime. The queue has been refreshed.`}
            />
          ))}
        </Stack>
      )}
      {query.error ? (
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      ) : query.isLoading ? (
        <TableSkeleton rows={3} />
      ) : approvals.length === 0 && paging.pageNumber === 1 ? (
        <EmptyState icon={<IconChecklist size={26} />} title="Nothing to review">
          When a data scientist submits a version for approval, it appears here.
        </EmptyState>
      ) : (
        <Stack gap="lg" aria-busy={query.isFetching}>
          <Group>
            <Text size="sm" c="dimmed" aria-live="polite">
              {approvals.length} open request{approvals.length === 1 ? "" : "s"}
              {query.data?.nextPageToken ? " on this page" : ""}
            </Text>
          </Group>
          {approvals.map((approval) => (
            <ApprovalCard
              key={approval.approvalId}
              approval={approval}
              subject={subject}
              onConflict={(error, title) => {
                setConflicts((list) => [...list, { error, title }]);
              }}
            />
          ))}
        </Stack>
      )}
      <Pager
        label="Review queue"
        pageNumber={paging.pageNumber}
        nextPageToken={query.data?.nextPageToken}
        onNext={paging.next}
        onPrevious={paging.previous}
        busy={query.isFetching}
      />
    </>
  );
}
