import { Anchor, Button, Group, Paper, SimpleGrid, Stack, Table, Text } from "@mantine/core";
import { IconUpload, IconVersions } from "@tabler/icons-react";
import { Link, useParams } from "react-router";

import { useGetModelQuery, useListModelVersionsQuery } from "../../api/api";
import { asApiError } from "../../api/errors";
import { useAppSelector } from "../../app/hooks";
import { can } from "../../app/navigation";
import { selectRoles } from "../../auth/authSlice";
import { ROLE_DATA_SCIENTIST } from "../../auth/jwt";
import { Bytes } from "../../components/Bytes";
import { CopyValue } from "../../components/CopyValue";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { int64 } from "../../components/format";
import { PageLoader, TableSkeleton } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Pager, usePageTokens } from "../../components/Pager";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { Truncated } from "../../components/Truncated";
import { Breadcrumbs } from "./Breadcrumbs";

export function Fact({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <Stack gap={2} style={{ minWidth: 0 }}>
      <Text size="xs" c="dimmed" tt="uppercase" fw={600} style={{ letterSpacing: 0.3 }}>
        {label}
      </Text>
      <Text size="sm" component="div" style={{ minWidth: 0 }}>
        {children}
      </Text>
    </Stack>
  );
}

export default function ModelPage() {
  const { modelId = "" } = useParams();
  const roles = useAppSelector(selectRoles);
  const model = useGetModelQuery(modelId);
  const paging = usePageTokens(modelId);
  const versions = useListModelVersionsQuery({ modelId, pageSize: 50, pageToken: paging.pageToken });

  if (model.error) {
    return (
      <>
        <Breadcrumbs items={[{ label: "Model" }]} />
        <PageHeader title="Model" docTitle="Model" />
        <ErrorAlert error={asApiError(model.error)} onRetry={() => void model.refetch()} />
      </>
    );
  }
  if (!model.data) return <PageLoader />;
  const name = model.data.name ?? modelId;

  return (
    <>
      <Breadcrumbs items={[{ label: name }]} />
      <PageHeader
        title={name}
        docTitle={name}
        actions={
          can(roles, ROLE_DATA_SCIENTIST) ? (
            <Button
              component={Link}
              to={`/upload?name=${encodeURIComponent(name)}`}
              variant="light"
              leftSection={<IconUpload size={16} aria-hidden />}
            >
              Upload a new version
            </Button>
          ) : null
        }
      >
        {model.data.description && (
          <Text c="dimmed" size="sm" style={{ overflowWrap: "anywhere", whiteSpace: "pre-line" }} lineClamp={4}>
            {model.data.description}
          </Text>
        )}
      </PageHeader>
      <Paper withBorder radius="md" p="md" mb="lg">
        <SimpleGrid cols={{ base: 2, md: 4 }} spacing="md">
          <Fact label="Latest version">v{model.data.latestVersion ?? "—"}</Fact>
          <Fact label="Owner">
            <Truncated size="sm">{model.data.createdBy ?? "—"}</Truncated>
          </Fact>
          <Fact label="Created">
            <Time value={model.data.createTime} />
          </Fact>
          <Fact label="Updated">
            <Time value={model.data.updateTime} />
          </Fact>
        </SimpleGrid>
        <Group mt="sm" gap={6} wrap="nowrap">
          <Text size="xs" c="dimmed">
            Model ID
          </Text>
          <CopyValue value={modelId} label="model id" size="xs" />
        </Group>
      </Paper>

      <Text component="h2" fw={650} size="lg" mb="xs">
        Versions
      </Text>
      {versions.error ? (
        <ErrorAlert error={asApiError(versions.error)} onRetry={() => void versions.refetch()} />
      ) : versions.isLoading ? (
        <TableSkeleton rows={3} />
      ) : (versions.data?.modelVersions ?? []).length === 0 ? (
        <EmptyState icon={<IconVersions size={26} />} title="No versions">
          This model has no versions you can see.
        </EmptyState>
      ) : (
        <Paper withBorder radius="md">
          <Table.ScrollContainer minWidth={620}>
            <Table highlightOnHover verticalSpacing="sm" layout="fixed">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th w={80}>Version</Table.Th>
                  <Table.Th w={160}>Status</Table.Th>
                  <Table.Th>Uploaded by</Table.Th>
                  <Table.Th w={170}>Uploaded</Table.Th>
                  <Table.Th w={100}>Size</Table.Th>
                  <Table.Th w={150} visibleFrom="md">
                    SHA-256
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {(versions.data?.modelVersions ?? []).map((v) => (
                  <Table.Tr key={v.version}>
                    <Table.Td>
                      <Anchor component={Link} to={`/models/${modelId}/versions/${v.version ?? ""}`} fw={600}>
                        v{v.version}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <StatusBadge status={v.status} />
                    </Table.Td>
                    <Table.Td>
                      <Truncated size="sm">{v.createdBy ?? "—"}</Truncated>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" component="span">
                        <Time value={v.createTime} />
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" component="span">
                        <Bytes value={int64(v.sizeBytes)} />
                      </Text>
                    </Table.Td>
                    <Table.Td visibleFrom="md">
                      <CopyValue value={v.sha256 ?? ""} label="SHA-256" size="xs" />
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </Paper>
      )}
      <Pager
        label="Versions"
        pageNumber={paging.pageNumber}
        nextPageToken={versions.data?.nextPageToken}
        onNext={paging.next}
        onPrevious={paging.previous}
        busy={versions.isFetching}
      />
    </>
  );
}
