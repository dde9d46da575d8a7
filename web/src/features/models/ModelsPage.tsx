import { Button, Group, Paper, Select, Table, Text, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { IconBox, IconSearch, IconUpload } from "@tabler/icons-react";
import { memo, type MouseEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { useListModelsQuery } from "../../api/api";
import { asApiError, statusWords } from "../../api/errors";
import { useAppSelector } from "../../app/hooks";
import { can } from "../../app/navigation";
import { selectRoles } from "../../auth/authSlice";
import { ROLE_DATA_SCIENTIST } from "../../auth/jwt";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { TableSkeleton } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Pager, usePageTokens } from "../../components/Pager";
import { StatusPill } from "../../components/StatusBadge";
import type { ModelJson } from "../../gen/mlplane/v1/model_registry_pb";
import { TimeText } from "../../components/Time";
import classes from "./ModelsPage.module.css";
import { buildModelFilter, isVersionStatus, VERSION_STATUSES } from "./filter";

const PAGE_SIZE = 50;

/**
 * One model: its name (cut short, whole on hover), newest version and that version's status
 * (Model.latestStatus: no request per row), owner and last change. Plain elements (see
 * ModelsPage.module.css) and memoised: a refetch that leaves a model unchanged (RTK Query
 * keeps equal objects) does not render its row again. Its links are plain anchors that the
 * table body follows inside the app (two react-router Links per row cost a third of a
 * 1,000-row render; bench/web_bench.py).
 */
const ModelRow = memo(function ModelRow({ model }: { model: ModelJson }) {
  const modelId = model.modelId ?? "";
  const latest = model.latestVersion ?? "";
  const name = model.name ?? modelId;
  return (
    <tr className={classes.row}>
      <td className={classes.cell}>
        <a href={`/models/${modelId}`} className={classes.name} title={name}>
          {name}
        </a>
        {model.description && (
          <span className={classes.description} title={model.description}>
            {model.description}
          </span>
        )}
      </td>
      <td className={classes.cell}>
        {latest ? (
          <a href={`/models/${modelId}/versions/${latest}`} className={classes.link}>
            v{latest}
          </a>
        ) : (
          "—"
        )}
      </td>
      <td className={classes.cell}>{model.latestStatus ? <StatusPill status={model.latestStatus} /> : "—"}</td>
      <td className={`${classes.cell ?? ""} mantine-visible-from-md`}>
        <span className={classes.line} title={model.createdBy}>
          {model.createdBy ?? "—"}
        </span>
      </td>
      <td className={classes.cell}>
        <TimeText value={model.updateTime} className={classes.time} />
      </td>
    </tr>
  );
});

/** A left click on a row's link navigates in the app; other clicks (new tab…) stay the browser's. */
function useFollowInApp(): (event: MouseEvent<HTMLElement>) => void {
  const navigate = useNavigate();
  return (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element).closest("a");
    const href = anchor?.getAttribute("href");
    if (!anchor || !href?.startsWith("/") || anchor.target) return;
    event.preventDefault();
    void navigate(href);
  };
}

export default function ModelsPage() {
  const followInApp = useFollowInApp();
  const roles = useAppSelector(selectRoles);
  const [params, setParams] = useSearchParams();
  const search = params.get("q") ?? "";
  const rawStatus = params.get("status");
  const status = isVersionStatus(rawStatus) ? rawStatus : null;
  const [debouncedSearch] = useDebouncedValue(search, 250);
  const filter = buildModelFilter({ search: debouncedSearch, status });
  const paging = usePageTokens(filter);
  const query = useListModelsQuery({ filter, pageSize: PAGE_SIZE, pageToken: paging.pageToken });
  const models = query.data?.models ?? [];
  const filtered = Boolean(filter);

  const setParam = (key: string, value: string | null) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  const uploadButton = can(roles, ROLE_DATA_SCIENTIST) ? (
    <Button component={Link} to="/upload" leftSection={<IconUpload size={16} aria-hidden />}>
      Upload a model
    </Button>
  ) : null;

  return (
    <>
      <PageHeader title="Models" docTitle="Models" actions={uploadButton}>
        <Text c="dimmed" size="sm">
          Your tenant&apos;s models and the status of their newest version.
        </Text>
      </PageHeader>
      <Group gap="sm" mb="md" align="flex-end" wrap="wrap">
        <TextInput
          label="Search by name"
          placeholder="e.g. pump"
          leftSection={<IconSearch size={16} aria-hidden />}
          value={search}
          onChange={(e) => {
            setParam("q", e.currentTarget.value);
          }}
          style={{ flex: "1 1 14rem", maxWidth: 360 }}
          spellCheck={false}
          autoComplete="off"
        />
        <Select
          label="Status of the newest version"
          placeholder="Any status"
          data={VERSION_STATUSES.map((s) => ({ value: s, label: statusWords(s) }))}
          value={status}
          onChange={(value) => {
            setParam("status", value);
          }}
          clearable
          allowDeselect
          style={{ flex: "0 1 14rem" }}
        />
      </Group>

      {query.error ? (
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      ) : query.isLoading ? (
        <TableSkeleton />
      ) : models.length === 0 && paging.pageNumber === 1 ? (
        filtered ? (
          <EmptyState
            icon={<IconSearch size={26} />}
            title="No models match"
            action={
              <Button
                variant="light"
                onClick={() => {
                  setParams(new URLSearchParams(), { replace: true });
                }}
              >
                Clear the search
              </Button>
            }
          >
            No model {debouncedSearch ? `whose name contains “${debouncedSearch}”` : ""}
            {debouncedSearch && status ? " and " : ""}
            {status ? `whose newest version is ${statusWords(status)}` : ""}.
          </EmptyState>
        ) : (
          <EmptyState icon={<IconBox size={26} />} title="No models yet" action={uploadButton}>
            {uploadButton
              ? "Upload a trained ONNX model: it appears here as Pending Approval, ready to submit for review."
              : "Models appear here when data scientists upload them."}
          </EmptyState>
        )
      ) : (
        <Paper withBorder radius="md">
          <Table.ScrollContainer minWidth={620}>
            <Table
              highlightOnHover
              verticalSpacing="sm"
              layout="fixed"
              aria-busy={query.isFetching}
              style={{ opacity: query.isFetching ? 0.7 : 1 }}
            >
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th w={92}>Latest</Table.Th>
                  <Table.Th w={160}>Status</Table.Th>
                  <Table.Th w={140} visibleFrom="md">
                    Owner
                  </Table.Th>
                  <Table.Th w={180}>Updated</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody onClick={followInApp}>
                {models.map((model) => (
                  <ModelRow key={model.modelId} model={model} />
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </Paper>
      )}
      <Pager
        label="Models"
        pageNumber={paging.pageNumber}
        nextPageToken={query.data?.nextPageToken}
        onNext={paging.next}
        onPrevious={paging.previous}
        busy={query.isFetching}
      />
    </>
  );
}
